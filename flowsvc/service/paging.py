"""Opaque page tokens for keyset pagination, and page size bounds."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from flowsvc.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("bad page size", [("page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_token(after: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(after).encode()).decode()


def decode_token(token: str) -> Any:
    """The key after which the page starts, or None for the first page."""
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error):
        raise InvalidArgument(
            "bad page token", [("page_token", "not a token this service returned")]
        ) from None
