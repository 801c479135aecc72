"""Checks on what a step takes in: its `validation` of typed input and its `accept` of media,
locations and contacts, as docs/templates.md lists."""

import re
from collections.abc import Mapping
from typing import Any

from flowsvc.engine.template import ACCEPTABLE
from flowsvc.validation.violation import Violation, clip, is_number, kind, quote, suggest

SHORTHANDS = ("number", "integer", "decimal", "yes_no", "email", "text")
VALIDATION_OPTIONS: dict[str, tuple[str, ...]] = {
    "integer": ("min", "max"),
    "decimal": ("min", "max", "places"),
    "yes_no": (),
    "email": (),
    "regex": ("pattern", "flags"),
    "text": ("min_length", "max_length"),
}
MAX_PATTERN = 1000
MAX_PLACES = 10


def check_input_rule(value: object, path: str, out: list[Violation]) -> None:
    """A step's `validation`: a shorthand string or an object, as in docs/templates.md."""
    if isinstance(value, str):
        if value not in SHORTHANDS:
            out.append(
                Violation(
                    path,
                    f"unknown validation '{clip(value)}'{suggest(value, SHORTHANDS)}: use "
                    f"{', '.join(SHORTHANDS)}, or an object such as "
                    '{"type": "regex", "pattern": "..."}',
                )
            )
        return
    if not isinstance(value, Mapping):
        out.append(
            Violation(
                path,
                "must be a string such as 'number' or an object such as "
                f'{{"type": "integer", "min": 1}}, not {kind(value)}',
            )
        )
        return
    check_type = value.get("type")
    if not (isinstance(check_type, str) and check_type in VALIDATION_OPTIONS):
        shown = "missing" if "type" not in value else quote(check_type)
        if check_type == "number":
            hint = ' (\'number\' is only a shorthand: write {"type": "integer", "min": 1})'
        else:
            hint = suggest(check_type, VALIDATION_OPTIONS)
        out.append(
            Violation(
                f"{path}.type",
                f"is {shown}: must be one of {', '.join(VALIDATION_OPTIONS)}{hint}",
            )
        )
        return
    allowed = VALIDATION_OPTIONS[check_type]
    for key in value:
        if key != "type" and key not in allowed:
            options = f"its options are {', '.join(allowed)}" if allowed else "it takes no options"
            out.append(
                Violation(
                    f"{path}.{key}",
                    f"'{check_type}' validation has no option '{clip(key)}'"
                    f"{suggest(key, allowed)}: {options}",
                )
            )
    if check_type in ("integer", "decimal"):
        _check_range(value, path, out, "min", "max", whole=check_type == "integer")
    if check_type == "decimal" and "places" in value:
        places = value["places"]
        if not (isinstance(places, int) and not isinstance(places, bool)) or not (
            0 <= places <= MAX_PLACES
        ):
            out.append(
                Violation(f"{path}.places", f"must be a whole number from 0 to {MAX_PLACES}")
            )
    if check_type == "text":
        _check_range(value, path, out, "min_length", "max_length", whole=True, floor=0)
    if check_type == "regex":
        _check_pattern(value, path, out)


def _check_range(
    value: Mapping[Any, Any],
    path: str,
    out: list[Violation],
    low_key: str,
    high_key: str,
    *,
    whole: bool,
    floor: int | None = None,
) -> None:
    bounds: dict[str, int | float] = {}
    for key in (low_key, high_key):
        if key not in value:
            continue
        bound = value[key]
        is_whole = isinstance(bound, int) or (isinstance(bound, float) and bound.is_integer())
        if not is_number(bound) or (whole and not is_whole):
            what = "a whole number" if whole else "a number"
            out.append(Violation(f"{path}.{key}", f"must be {what}, not {quote(bound)}"))
        elif floor is not None and bound < floor:
            out.append(Violation(f"{path}.{key}", f"must be at least {floor}, not {bound}"))
        else:
            bounds[key] = bound
    if len(bounds) == 2 and bounds[low_key] > bounds[high_key]:
        out.append(
            Violation(
                path,
                f"{low_key} {bounds[low_key]} is greater than {high_key} {bounds[high_key]}: "
                "no input could pass",
            )
        )


def _check_pattern(value: Mapping[Any, Any], path: str, out: list[Violation]) -> None:
    flags = value.get("flags", "")
    if flags not in ("", "i"):
        out.append(
            Violation(f"{path}.flags", f"must be 'i' (ignore case) or '', not {quote(flags)}")
        )
    if "pattern" not in value:
        out.append(Violation(f"{path}.pattern", "is missing: a regex validation needs a pattern"))
        return
    pattern = value["pattern"]
    if not isinstance(pattern, str) or not pattern:
        problem = f"must be a non-empty string, not {quote(pattern)}"
        out.append(Violation(f"{path}.pattern", problem))
        return
    if len(pattern) > MAX_PATTERN:
        out.append(
            Violation(
                f"{path}.pattern",
                f"is {len(pattern)} characters long; at most {MAX_PATTERN} are allowed",
            )
        )
        return
    try:
        re.compile(pattern, re.IGNORECASE if flags == "i" else 0)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        out.append(Violation(f"{path}.pattern", f"does not compile: {exc}"))


def check_accept(step: Mapping[Any, Any], path: str, out: list[Violation]) -> None:
    """`accept`: what the step takes besides taps ("text", media types, "location", "contacts"),
    as one kind or a list; what arrives is stored under context_key and leads to next_step."""
    raw = step["accept"]
    kinds = [raw] if isinstance(raw, str) else raw
    if not isinstance(kinds, list) or not kinds:
        out.append(
            Violation(
                f"{path}.accept",
                f"must be one of {', '.join(ACCEPTABLE)}, or a list of them, not {kind(raw)}",
            )
        )
        return
    for index, item in enumerate(kinds):
        where = f"{path}.accept" if isinstance(raw, str) else f"{path}.accept[{index}]"
        if item not in ACCEPTABLE:
            out.append(
                Violation(
                    where,
                    f"is {quote(item)}: must be one of {', '.join(ACCEPTABLE)}"
                    f"{suggest(item, ACCEPTABLE)}",
                )
            )
    if "next_step" not in step:
        out.append(
            Violation(
                f"{path}.accept",
                "takes what the customer sends, but the step has no next_step to go on to",
            )
        )
    if "context_key" not in step:
        out.append(
            Violation(
                f"{path}.accept",
                'what arrives is dropped: add "context_key" to keep it in the context',
                warning=True,
            )
        )
