"""How a failed call answers: each error class to one gRPC status code, in one place.

FlowError subclasses map to their codes (INVALID_ARGUMENT with a google.rpc.BadRequest listing
every violation); a database that cannot be reached is UNAVAILABLE (retry later); anything else
is INTERNAL, whose text (it may quote a customer's words) stays in our log. The interceptor
answers so for every unary call, so that servicer methods only translate.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from flowsvc.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FlowError,
    InvalidArgument,
    NotFound,
    OutOfRange,
    ResourceExhausted,
    count,
)
from flowsvc.rpc import Continuation, abort, call
from flowsvc.store.db import UNREACHABLE

log = logging.getLogger("flowsvc.calls")

INTERNAL = "internal error: flowsvc logged the details"
UNAVAILABLE = "the database cannot be reached right now; try again"
STATUS_CODES: dict[type[FlowError], int] = {
    InvalidArgument: code_pb2.INVALID_ARGUMENT,
    NotFound: code_pb2.NOT_FOUND,
    AlreadyExists: code_pb2.ALREADY_EXISTS,
    FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    Aborted: code_pb2.ABORTED,
    OutOfRange: code_pb2.OUT_OF_RANGE,
}
# A status travels in HTTP/2 trailers, and gRPC clients start refusing trailers over 8 KiB, counted
# as received: grpc-message percent-encoded, and grpc-status-details-bin decoded, which holds the
# google.rpc.Status (the message again, plus the details). The details take up to
# MAX_DETAILS_BYTES, the message what is left of TRAILER_BUDGET (twice: it is sent twice), and what
# does not fit is counted instead of sent.
TRAILER_BUDGET = 7600
MAX_DETAILS_BYTES = 4000
# Calls that log each message's failure themselves, with the message's fields (service.messagelog).
SELF_LOGGING = frozenset(
    f"/menuflow.v1.FlowService/{name}"
    for name in (
        "HandleMessage",
        "HandleMessages",
        "StartConversation",
        "UpdateConversation",
        "SendMessage",
    )
)


def status_message(error: Exception) -> status_pb2.Status:
    """The google.rpc.Status a call failing with `error` answers."""
    if isinstance(error, UNREACHABLE):
        return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=UNAVAILABLE)
    if not isinstance(error, FlowError):
        return status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL)
    status = status_pb2.Status(code=STATUS_CODES[type(error)])
    if isinstance(error, InvalidArgument) and error.violations:
        request = error_details_pb2.BadRequest()
        for index, (field, reason) in enumerate(error.violations):
            request.field_violations.add(field=field[:300], description=reason[:500])
            if request.ByteSize() > MAX_DETAILS_BYTES:
                del request.field_violations[-1]
                request.field_violations.add(
                    field=field[:300],
                    description=f"and {count(len(error.violations) - index, 'more problem')}",
                )
                break
        detail = any_pb2.Any()
        detail.Pack(request)
        status.details.append(detail)
    status.message = readable(error, (TRAILER_BUDGET - status.ByteSize()) // 2)
    return status


def readable(error: FlowError, budget: int) -> str:
    """The status message within `budget` bytes as sent: an InvalidArgument's problems one per
    line, as many as fit, then how many were left out (every one is also in the BadRequest
    detail, as far as it fits)."""
    if not (isinstance(error, InvalidArgument) and error.violations):
        return _cut(str(error), budget)
    lines = error.lines()
    kept = [_cut(error.headline(), budget // 2)]
    used = wire_size(kept[0])
    for index, line in enumerate(lines):
        line = _cut(line, budget // 2)
        left = len(lines) - index - 1
        # Room for this line, and for the "and N more" line if others would still follow.
        reserve = wire_size(_more(left)) + 1 if left else 0
        if used + 1 + wire_size(line) + reserve > budget:
            kept.append(_more(len(lines) - index))
            break
        kept.append(line)
        used += 1 + wire_size(line)
    return "\n".join(kept)


def _more(left: int) -> str:
    return f"… and {count(left, 'more problem')} not shown here"


def wire_size(text: str) -> int:
    """How many bytes `text` takes as grpc-message: printable ASCII as is, the rest %XX."""
    return sum(1 if 0x20 <= byte <= 0x7E and byte != 0x25 else 3 for byte in text.encode())


def _cut(text: str, limit: int) -> str:
    if wire_size(text) <= limit:
        return text
    budget, kept = limit - wire_size("…"), []
    for character in text:
        budget -= wire_size(character)
        if budget < 0:
            break
        kept.append(character)
    return "".join(kept) + "…"


class ErrorStatus(grpc.aio.ServerInterceptor):
    """Answers an exception out of a call with its status (and logs what is ours to fix)."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is not None and inspect.isasyncgenfunction(handler.unary_stream):
            return _streaming(handler, details.method)
        if handler is None or handler.unary_unary is None:
            return handler
        return _answering(handler, details.method)


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    status = rpc_status.to_status(status_message(error))
    await abort(context, status.code, status.details, status.trailing_metadata)


def _answering(
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    behavior = handler.unary_unary
    assert behavior is not None
    logs = method not in SELF_LOGGING

    async def answered(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await call(behavior, request, context)
        except grpc.aio.AbortError:  # answered already (grpc's health service: NOT_FOUND)
            raise
        except Exception as error:
            if logs:
                _log(method, error)
            await _abort(context, error)

    return grpc.unary_unary_rpc_method_handler(
        answered,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _streaming(
    handler: grpc.RpcMethodHandler[Any, Any], method: str
) -> grpc.RpcMethodHandler[Any, Any]:
    """As _answering, for a server stream (an async generator, typed as a plain one in grpc's
    stubs): an exception ends the stream with its status."""
    behavior = cast(
        "Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]",
        handler.unary_stream,
    )

    async def answered(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        try:
            async for response in behavior(request, context):
                yield response
        except grpc.aio.AbortError:
            raise
        except Exception as error:
            _log(method, error)
            await _abort(context, error)

    serialize = handler.response_serializer
    assert serialize is not None

    def serialized(response: Any) -> bytes:
        # WatchEvents yields its responses as bytes, serialized once for every stream
        # (convert.ResponseCache); anything else is serialized here.
        return response if isinstance(response, bytes) else serialize(response)

    return grpc.unary_stream_rpc_method_handler(
        answered,
        request_deserializer=handler.request_deserializer,
        response_serializer=serialized,
    )


def _log(method: str, error: Exception) -> None:
    if isinstance(error, UNREACHABLE):
        # Retryable for the caller: the gateway answers Meta non-200; Meta redelivers.
        cause = getattr(error, "orig", None) or error
        log.warning("database unavailable", extra={"call": method, "error": type(cause).__name__})
    elif not isinstance(error, FlowError):
        log.exception("call failed", extra={"call": method})
