"""Every unary call counted by method and status code, and timed: the flowsvc_rpcs metrics."""

from __future__ import annotations

import time
from typing import Any

import grpc

from flowsvc.metrics import Metrics
from flowsvc.rpc import Continuation


class CallMetrics(grpc.ServerInterceptor):
    """Outermost interceptor: it sees every answer, refusals of the token check included."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        return _metered(handler, details.method.rpartition("/")[2], self._metrics)


def _metered(
    handler: grpc.RpcMethodHandler[Any, Any], method: str, metrics: Metrics
) -> grpc.RpcMethodHandler[Any, Any]:
    behavior = handler.unary_unary
    assert behavior is not None
    seconds = metrics.rpc_seconds.labels(method)

    def metered(request: Any, context: grpc.ServicerContext) -> Any:
        started = time.perf_counter()
        code = "UNKNOWN"  # an exception that set no code
        try:
            response = behavior(request, context)
            code = _name(_code(context)) or "OK"
            return response
        except Exception:
            code = _name(_code(context)) or code
            raise
        finally:
            seconds.observe(time.perf_counter() - started)
            metrics.rpcs.labels(method, code).inc()

    return grpc.unary_unary_rpc_method_handler(
        metered,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _code(context: grpc.ServicerContext) -> object:
    """The code the call will end with, as far as set (grpc's typing stubs lack code())."""
    return context.code()  # type: ignore[attr-defined]


def _name(code: object) -> str | None:
    return code.name if isinstance(code, grpc.StatusCode) else None
