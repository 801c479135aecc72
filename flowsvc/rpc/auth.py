"""Bearer tokens with roles: every RPC but the health service must carry a token flowsvc knows
(UNAUTHENTICATED otherwise, before its request is even parsed), of a role that may call it
(PERMISSION_DENIED otherwise; rpc.roles says which)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any

import grpc
from grpc_health.v1 import health

from flowsvc.rpc import Continuation, abort, roles

log = logging.getLogger("flowsvc.auth")

# Health checks come from orchestrators (compose, Kubernetes probes) that hold no token, and
# say nothing but SERVING / NOT_SERVING.
OPEN_PREFIXES = (f"/{health.SERVICE_NAME}/",)
MISSING = (
    "this call needs a token: send the metadata 'authorization: Bearer <token>' "
    "(a token flowsvc was given in FLOWSVC_TOKEN or FLOWSVC_TOKENS)"
)
MALFORMED = "the authorization metadata must be exactly one 'Bearer <token>'"
WRONG = "the bearer token is none of flowsvc's (FLOWSVC_TOKEN, FLOWSVC_TOKENS)"


def identify(metadata: Any, tokens: Sequence[tuple[str, bytes]]) -> tuple[str | None, str]:
    """The role of the token in `metadata`, or (None, why not)."""
    values = [value for key, value in metadata or () if key == "authorization"]
    if not values:
        return None, MISSING
    scheme, _, given = values[0].partition(" ") if len(values) == 1 else ("", "", "")
    if scheme.lower() != "bearer" or not given:
        return None, MALFORMED
    presented = given.strip().encode()
    found = None
    for role, token in tokens:  # every token compared, so the time says nothing of which matched
        if hmac.compare_digest(presented, token) and found is None:
            found = role
    return (found, "") if found is not None else (None, WRONG)


class TokenAuth(grpc.aio.ServerInterceptor):
    """Refuses a call without a known token (UNAUTHENTICATED) or whose token's role may not make
    it (PERMISSION_DENIED), before its request is even parsed."""

    def __init__(self, tokens: Sequence[tuple[str, str]]) -> None:
        if not tokens or any(not token for _, token in tokens):
            raise ValueError("an empty token would let everyone in")
        unknown = {role for role, _ in tokens} - set(roles.ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}: the roles are {roles.ROLES}")
        self._tokens = [(role, token.encode()) for role, token in tokens]

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(OPEN_PREFIXES):
            return handler
        role, reason = identify(details.invocation_metadata, self._tokens)
        if role is None:
            return _refusing(handler, details.method, grpc.StatusCode.UNAUTHENTICATED, reason)
        permitted = roles.allowed(details.method)
        if role in permitted:
            return handler
        name = details.method.rpartition("/")[2]
        reason = (
            f"a {role} token may not call {name}: it needs a token of the role "
            f"{' or '.join(r for r in roles.ROLES if r in permitted)} (see SECURITY.md)"
        )
        return _refusing(handler, details.method, grpc.StatusCode.PERMISSION_DENIED, reason)


def _refusing(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, code: grpc.StatusCode, reason: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same shape as `handler` that aborts; requests stay unparsed bytes."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        log.warning("call refused", extra={"method": method, "peer": context.peer(), "why": reason})
        await abort(context, code, reason)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(refuse)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(refuse)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(refuse)
    return grpc.unary_unary_rpc_method_handler(refuse)
