"""JSON values as protobuf's Struct carries them, shared by flowsvc and the client."""

from __future__ import annotations

from typing import Any


def integral(value: Any) -> Any:
    """protobuf's Struct holds every number as a double: give integral ones back as ints, so
    that 99 read back is 99, not 99.0 (within the doubles that hold integers exactly)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {key: integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [integral(item) for item in value]
    return value
