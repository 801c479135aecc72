"""FlowService on gRPC: protobuf in and out, interceptors, and how the server binds its port.

The server is grpc.aio's, so that event streams wait and write on one event loop rather than a
thread each; the servicer's unary methods are blocking (each is a database transaction) and run
on the server's thread pool, the loop's default executor (`call`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

# What a server interceptor is handed (a string: grpc's handler types are generic only in stubs).
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]]"
)


async def call(behavior: Callable[..., Any], request: Any, context: Any) -> Any:
    """A unary method's answer: awaited when it is a coroutine (grpc's health service), else run
    on the thread pool (the servicer's methods: blocking database work)."""
    if inspect.iscoroutinefunction(behavior):
        return await behavior(request, context)
    return await asyncio.get_running_loop().run_in_executor(None, behavior, request, context)


async def abort(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    details: str,
    trailing_metadata: Any = (),
) -> None:
    """End the call with `code`, which `context.code()` then reports (grpc.aio's abort alone
    leaves it OK, and the call metrics read it)."""
    context.set_code(code)
    await context.abort(code, details, trailing_metadata)
