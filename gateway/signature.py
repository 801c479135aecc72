"""Meta's webhook signature: HMAC-SHA256 of the raw body keyed with the app secret, strictly."""

from __future__ import annotations

import hashlib
import hmac
import re

PREFIX = "sha256="
_HEX64 = re.compile(r"[0-9a-f]{64}")


def sign(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 header value Meta sends for this body."""
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def is_valid(secret: str, body: bytes, headers: list[str]) -> bool:
    """True only for exactly one `sha256=<64 lowercase hex>` header that matches the body.

    Everything else is refused: no header, two headers (which one would a proxy keep?), `sha1=` or
    any other prefix or case, malformed hex, and an empty secret (an empty key proves nothing).
    """
    if not secret or len(headers) != 1:
        return False
    header = headers[0]
    if not header.startswith(PREFIX):
        return False
    digest = header[len(PREFIX) :]
    if not _HEX64.fullmatch(digest):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, digest)


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison of a configured token with a request's; empty never matches."""
    if not expected:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
