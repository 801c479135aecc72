"""Every unary call counted by method and status code, and timed: the flowsvc_rpcs metrics."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from flowsvc.metrics import Metrics
from flowsvc.rpc import Continuation, call


class CallMetrics(grpc.aio.ServerInterceptor):
    """Outermost interceptor: it sees every answer, refusals of the token check included."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return _metered(handler, details.method.rpartition("/")[2], self._metrics)


def _metered(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, metrics: Metrics
) -> grpc.RpcMethodHandler[Any, Any]:
    behavior = handler.unary_unary
    assert behavior is not None
    seconds = metrics.rpc_seconds.labels(method)

    async def metered(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        code = "UNKNOWN"  # an exception that set no code
        try:
            response = await call(behavior, request, context)
            code = _name(context) or "OK"
            return response
        except Exception:  # an abort ends the call with one too (AbortError)
            code = _name(context) or code
            raise
        except asyncio.CancelledError:  # the caller went away, or its deadline passed
            remaining = context.time_remaining()
            code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
            raise
        finally:
            seconds.observe(time.perf_counter() - started)
            metrics.rpcs.labels(method, code).inc()

    return grpc.unary_unary_rpc_method_handler(
        metered,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _name(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The code the call will end with, as far as set (rpc.abort sets it)."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else None
