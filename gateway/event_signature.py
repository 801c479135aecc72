"""The signature on event deliveries: HMAC-SHA256, keyed with the endpoint's secret, over the
unix time, a dot and the raw body; sent as `X-Menuflow-Signature: t=<unix>,v1=<hex>`."""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Menuflow-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance: float = 300) -> bool:
    """What a receiver checks: a v1 signature of this body, made within `tolerance` seconds."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields.get("t", ""))
    except ValueError:
        return False
    if not secret or abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).rpartition("v1=")[2]
    return hmac.compare_digest(expected, fields.get("v1", ""))
