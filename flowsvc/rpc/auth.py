"""The shared bearer token: every RPC but the health service must carry it, or nothing runs."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import grpc
from grpc_health.v1 import health

from flowsvc.rpc import Continuation

log = logging.getLogger("flowsvc.auth")

# Health checks come from orchestrators (compose, Kubernetes probes) that hold no token, and
# say nothing but SERVING / NOT_SERVING.
OPEN_PREFIXES = (f"/{health.SERVICE_NAME}/",)
MISSING = (
    "this call needs the shared token: send the metadata 'authorization: Bearer <token>' "
    "(the value of flowsvc's FLOWSVC_TOKEN)"
)
MALFORMED = "the authorization metadata must be exactly one 'Bearer <token>'"
WRONG = "the bearer token is not the one flowsvc was given (FLOWSVC_TOKEN)"


def refusal(metadata: Any, token: bytes) -> str | None:
    """Why a call with `metadata` may not run, or None when it carries the right token."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if not values:
        return MISSING
    scheme, _, given = values[0].partition(" ") if len(values) == 1 else ("", "", "")
    if scheme.lower() != "bearer" or not given:
        return MALFORMED
    return None if hmac.compare_digest(given.strip().encode(), token) else WRONG


class TokenAuth(grpc.ServerInterceptor):
    """Refuses every call without `authorization: Bearer <token>` with UNAUTHENTICATED, before
    its request is even parsed."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("an empty token would let everyone in")
        self._token = token.encode()

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        reason = refusal(details.invocation_metadata, self._token)
        if reason is None:
            return handler
        return _refusing(handler, details.method, reason)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, reason: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as `handler` that aborts; requests stay unparsed bytes."""

    def abort(_request: Any, context: grpc.ServicerContext) -> None:
        log.warning("call refused", extra={"method": method, "peer": context.peer(), "why": reason})
        context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)
