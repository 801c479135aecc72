"""Meta's error object, as webhook statuses and Graph API answers carry it, in the proto's shape."""

from __future__ import annotations

from typing import Any

from gateway.json_fields import as_dict, as_str
from menuflow.v1 import flow_pb2


def meta_error(raw: Any) -> flow_pb2.MetaError:
    """A Meta error object (webhook errors[] or a Graph API error) as the proto carries it."""
    error = as_dict(raw)
    code = error.get("code")
    return flow_pb2.MetaError(
        code=code if isinstance(code, int) and -(2**31) <= code < 2**31 else 0,
        title=as_str(error.get("title")) or as_str(error.get("message")),
        details=as_str(as_dict(error.get("error_data")).get("details")),
    )


def graph_error(body: Any, status: int, content: bytes) -> tuple[flow_pb2.MetaError, int | None]:
    """The error of a Graph API answer, and Meta's code; without a Meta error object in the body
    (a proxy's page, say), code 0 titled with the HTTP status, and None."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        return meta_error(error), error["code"]
    text = content[:300].decode("utf-8", "replace")
    return flow_pb2.MetaError(code=0, title=f"HTTP {status}", details=text), None
