"""Typed reading of Meta's JSON: a field of an unexpected type, or longer than its limit, reads as
absent; never raises."""

from __future__ import annotations

from typing import Any

# Longest text Meta sends in each kind of field (meta-contract.md; WhatsApp's own limits), in
# characters. A longer value is not one Meta sent: it reads as absent.
ID_CHARS = 255  # a message id (wamid.), as flowsvc stores it
NUMBER_CHARS = 64  # a phone number, a wa_id or a phone_number_id (flowsvc takes 32 digits)
WORD_CHARS = 64  # an enumeration: a type, a status
NAME_CHARS = 256  # a contact name, a button or list row id, title or description
TEXT_CHARS = 4096  # a text message's body (WhatsApp's limit), an error's details
INT32 = 2**31


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any, limit: int = ID_CHARS) -> str:
    """A string (or an integer, as text) of at most `limit` characters, else "": always text
    protobuf accepts (a lone surrogate, "\\ud800", becomes "?")."""
    if isinstance(value, int) and not isinstance(value, bool):  # bool is an int in Python
        value = str(value) if -(10**limit) < value < 10**limit else ""
    if not isinstance(value, str) or len(value) > limit:
        return ""
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates: protobuf refuses them
        return value.encode("utf-8", "replace").decode()
    return value


def as_int32(value: Any) -> int | None:
    """An integer that fits protobuf's int32, else None (true and false are not integers)."""
    if isinstance(value, int) and not isinstance(value, bool) and -INT32 <= value < INT32:
        return value
    return None
