"""Placeholder filling and money formatting: names looked up in the context, nothing evaluated.

Only `{name}` and `{name:format}` are recognised, by one regular expression, in one pass: the text
a value brings in (a customer's own words) is inserted verbatim and never scanned again, and
str.format is never called on templates or customer text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
# Names the engine fills in itself (a flow switch adds previous_selection); templates read them.
BUILTIN_NAMES = ("contact_name", "order_id", "recent_orders", "previous_selection")
FORMATS = frozenset({"money", "upper", "lower"})
ELLIPSIS = "…"
_CENT = Decimal("0.01")


def placeholder_names(text: str) -> set[str]:
    """The context names a text refers to (for validators)."""
    return {match.group(1) for match in PLACEHOLDER.finditer(text)}


def truncate(text: str, limit: int) -> str:
    """Cut `text` to at most `limit` code points, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)] + ELLIPSIS


def to_decimal(value: Any) -> Decimal | None:
    """A context value as a Decimal, or None when it is not a number (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def money(value: Any, currency: str) -> str:
    """`7` or `"7.0"` -> `$7.00`; a value that is not a number is shown as it is."""
    number = to_decimal(value)
    if number is None:
        return plain(value)
    try:
        cents = number.quantize(_CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return plain(value)
    sign = "-" if cents < 0 else ""
    return f"{sign}{currency}{abs(cents):,.2f}"


def plain(value: Any) -> str:
    """A context value as a customer should read it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(plain(item) for item in value)
    return str(value)


def fill(text: str, context: Mapping[str, Any], *, currency: str = "$") -> str:
    """Replace every placeholder in `text`; unknown names become empty strings."""

    def replace(match: re.Match[str]) -> str:
        value = context.get(match.group(1))
        style = match.group(2)
        if style == "money":
            return money(value, currency) if value is not None else ""
        rendered = plain(value)
        if style == "upper":
            return rendered.upper()
        if style == "lower":
            return rendered.lower()
        return rendered

    return PLACEHOLDER.sub(replace, text)


def fill_capped(text: str, context: Mapping[str, Any], limit: int, *, currency: str = "$") -> str:
    """Fill placeholders, then keep within `limit`; never empty, since Meta rejects empty texts."""
    rendered = truncate(fill(text, context, currency=currency).strip(), limit)
    return rendered or ELLIPSIS


def fill_url(url: str, context: Mapping[str, Any]) -> str:
    """Fill a URL's placeholders with their values percent-encoded, so that a value (perhaps the
    customer's own words) stays one path segment or query value and cannot change the URL's
    host, path or other parameters."""

    def replace(match: re.Match[str]) -> str:
        return quote(plain(context.get(match.group(1))), safe="")

    return PLACEHOLDER.sub(replace, url)


def fill_data(value: Any, context: Mapping[str, Any], *, currency: str = "$") -> Any:
    """A Flow screen's data with its placeholders filled: a string that is one placeholder and
    nothing else takes the context value as it is (a number, a list, an object), since a Flow's
    data is typed; other strings are filled as texts; lists and objects are walked."""
    if isinstance(value, str):
        whole = PLACEHOLDER.fullmatch(value)
        if whole is not None and whole.group(2) is None:
            found = context.get(whole.group(1))
            return "" if found is None else found
        return fill(value, context, currency=currency)
    if isinstance(value, Mapping):
        return {key: fill_data(item, context, currency=currency) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [fill_data(item, context, currency=currency) for item in value]
    return value
