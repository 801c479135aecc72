"""FlowService on gRPC: protobuf in and out, interceptors, and how the server binds its port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import grpc

# What a server interceptor is handed (a string: grpc's handler types are generic only in stubs).
Continuation: TypeAlias = (
    "Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None]"
)
