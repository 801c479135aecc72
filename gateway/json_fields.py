"""Lenient reading of Meta's JSON: a field of an unexpected type reads as empty, never raises."""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    """A string or a number as text, anything else as ""; always text protobuf accepts."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # lone surrogates ("\\ud800"): protobuf refuses them
            return value.encode("utf-8", "replace").decode()
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""
