"""What a customer typed, against the step's input rule: a context value, or Invalid."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from flowsvc.engine.keywords import phrase

REGEX_MAX_INPUT = 200  # keeps a badly written pattern's backtracking bounded
_INTEGER = re.compile(r"[+-]?\d{1,15}")
_DECIMAL = re.compile(r"[+-]?\d{1,15}(?:[.,]\d{1,10})?")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(?:\.[^@\s.]+)+")
YES_WORDS = frozenset(
    {"yes", "y", "yeah", "yep", "yup", "sure", "ok", "okay", "si", "oui", "ja", "sim"}
)
NO_WORDS = frozenset({"no", "n", "nope", "nah", "non", "nein", "nao"})


@dataclass(frozen=True)
class InputRule:
    """A step's `validation` field, parsed; `kind` is number, integer, decimal, yes_no, email,
    regex or text."""

    kind: str
    min: Decimal | None = None
    max: Decimal | None = None
    places: int | None = None
    pattern: str | None = None
    ignore_case: bool = False
    min_length: int = 1
    max_length: int = 1000


class Invalid(ValueError):
    """The typed text does not satisfy the step's input rule."""


def check(rule: InputRule | None, text: str) -> Any:
    """The JSON value to store for `text`, or raise Invalid.

    integer/number -> int, decimal -> decimal string ("3.50"), yes_no -> bool, others -> the
    text stripped of surrounding spaces.
    """
    value = text.strip()
    if rule is None:
        if not value:
            raise Invalid("empty")
        return value
    kind = rule.kind
    if kind == "number":
        return _integer(value, InputRule("integer", min=Decimal(1)))
    if kind == "integer":
        return _integer(value, rule)
    if kind == "decimal":
        return _decimal(value, rule)
    if kind == "yes_no":
        answer = phrase(value)
        if answer in YES_WORDS:
            return True
        if answer in NO_WORDS:
            return False
        raise Invalid("not yes or no")
    if kind == "email":
        if len(value) > 254 or not _EMAIL.fullmatch(value):
            raise Invalid("not an e-mail address")
        return value
    if kind == "regex":
        return _regex(value, rule)
    if not rule.min_length <= len(value) <= rule.max_length:
        raise Invalid("wrong length")
    return value


def _bounded(number: Decimal, rule: InputRule) -> None:
    if rule.min is not None and number < rule.min:
        raise Invalid("too small")
    if rule.max is not None and number > rule.max:
        raise Invalid("too large")


def _integer(value: str, rule: InputRule) -> int:
    if not _INTEGER.fullmatch(value):
        raise Invalid("not a whole number")
    _bounded(Decimal(value), rule)
    return int(value)


def _decimal(value: str, rule: InputRule) -> str:
    if not _DECIMAL.fullmatch(value):
        raise Invalid("not a number")
    number = Decimal(value.replace(",", "."))
    exponent = number.as_tuple().exponent  # an int: the pattern admits finite numbers only
    if rule.places is not None and isinstance(exponent, int) and -exponent > rule.places:
        raise Invalid("too many decimal places")
    _bounded(number, rule)
    return format(number, "f")


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except (re.error, RecursionError, OverflowError):
        return None


def _regex(value: str, rule: InputRule) -> str:
    if len(value) > REGEX_MAX_INPUT or rule.pattern is None:
        raise Invalid("too long for a pattern")
    compiled = _compiled(rule.pattern, rule.ignore_case)
    if compiled is None or not compiled.fullmatch(value):
        raise Invalid("does not match")
    return value


def parse_input_rule(raw: Any) -> InputRule | None:
    """A `validation` field as written in a template (string shorthand or object)."""
    if isinstance(raw, str):
        return InputRule(raw)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return None
    return InputRule(
        kind=raw["type"],
        min=_number(raw.get("min")),
        max=_number(raw.get("max")),
        places=_int(raw.get("places")),
        pattern=raw.get("pattern") if isinstance(raw.get("pattern"), str) else None,
        ignore_case="i" in str(raw.get("flags") or ""),
        min_length=_int_or(raw.get("min_length"), 1),
        max_length=_int_or(raw.get("max_length"), 1000),
    )


def _number(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        return None
    try:
        number = Decimal(str(raw))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _int_or(raw: Any, default: int) -> int:
    number = _int(raw)
    return default if number is None else number


def _int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return None
