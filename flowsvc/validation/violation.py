"""Violation, the small vocabulary every check phrases problems in, and the unknown-key check."""

import difflib
from collections.abc import Collection, Mapping
from dataclasses import dataclass

MAX_HINT_POOL = 100


@dataclass(frozen=True)
class Violation:
    """One problem: `field` is a path into the template; `description` says what to change.

    A warning is legal but probably not what the author meant: it never makes a template invalid.
    """

    field: str
    description: str
    warning: bool = False


def kind(value: object) -> str:
    """Name a JSON value's type the way a template author would read it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def clip(text: object, limit: int = 40) -> str:
    """Quote a value in a description without pasting a huge string back at its author."""
    shown = text if isinstance(text, str) else repr(text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def quote(value: object) -> str:
    """A value as JSON would write it, shortened: 'carousel', 5, true, null, a list."""
    if isinstance(value, str):
        return f"'{clip(value)}'"
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return clip(value)
    return kind(value)


def closest(word: object, candidates: Collection[str]) -> str | None:
    """The candidate `word` is an obvious typo of, if any.

    Only among a few candidates: a hint is for a handful of names, and this keeps a template with
    thousands of names from costing a comparison of every name with every other.
    """
    if not isinstance(word, str) or not word or len(word) > 64 or len(candidates) > MAX_HINT_POOL:
        return None
    pool = sorted(c for c in candidates if isinstance(c, str))  # sorted: the same hint every time
    matches = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggest(word: object, candidates: Collection[str]) -> str:
    """' (did you mean 'x'?)' for an obvious typo, else ''."""
    match = closest(word, candidates)
    return f" (did you mean '{match}'?)" if match else ""


def is_number(value: object) -> bool:
    """A JSON number: an int or a finite float, and not a bool (which Python counts as an int)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return (
        isinstance(value, float) and value == value and value not in (float("inf"), float("-inf"))
    )


def check_keys(
    value: Mapping[object, object], allowed: tuple[str, ...], path: str, out: list[Violation]
) -> None:
    """Report keys Meta (or the engine) would not understand, with the likely intended key."""
    for key in value:
        if key not in allowed:
            out.append(
                Violation(
                    f"{path}.{key}",
                    f"unknown key '{clip(key)}'{suggest(key, allowed)}: "
                    f"the keys allowed here are {', '.join(allowed)}",
                )
            )
