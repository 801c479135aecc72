"""Meta's error object, as webhook statuses and Graph API answers carry it, in the proto's shape."""

from __future__ import annotations

from typing import Any

from gateway.json_fields import TEXT_CHARS, as_dict, as_int32, as_str
from menuflow.v1 import flow_pb2


def meta_error(raw: Any) -> flow_pb2.MetaError:
    """A Meta error object (webhook errors[] or a Graph API error) as the proto carries it; a code
    that is not an int32 (a boolean, a float, text) reads as 0."""
    error = as_dict(raw)
    return flow_pb2.MetaError(
        code=as_int32(error.get("code")) or 0,
        title=as_str(error.get("title"), TEXT_CHARS) or as_str(error.get("message"), TEXT_CHARS),
        details=as_str(as_dict(error.get("error_data")).get("details"), TEXT_CHARS),
    )


def graph_error(body: Any, status: int, content: bytes) -> tuple[flow_pb2.MetaError, int | None]:
    """The error of a Graph API answer, and Meta's code; without a Meta error object with an
    integer code in the body (a proxy's page, say), code 0 titled with the HTTP status, and None."""
    error = body.get("error") if isinstance(body, dict) else None
    code = as_int32(error.get("code")) if isinstance(error, dict) else None
    if code is not None:
        return meta_error(error), code
    text = content[:300].decode("utf-8", "replace")
    return flow_pb2.MetaError(code=0, title=f"HTTP {status}", details=text), None
