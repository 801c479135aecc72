"""Opaque page tokens for keyset pagination, and page size bounds.

A token is the key the next page starts after, as JSON in URL-safe base64. A token that does
not decode to the key type of the list it is given to was not one this service returned.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TypeVar

from flowsvc.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

Key = TypeVar("Key", int, str)


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("bad page size", [("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(after: int | str) -> str:
    return base64.urlsafe_b64encode(json.dumps(after).encode()).decode()


def decode_token(token: str, key: type[Key]) -> Key | None:
    """The key after which the page starts, or None for the first page."""
    if not token:
        return None
    after: object = None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        pass
    # bool is an int to Python, never a key here.
    if not isinstance(after, key) or isinstance(after, bool):
        raise InvalidArgument(
            "bad page token", [("page_token", "not a token this service returned")]
        )
    return after
