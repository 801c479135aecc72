"""A typed Python client for FlowService, synchronous (FlowClient) and asyncio (AsyncFlowClient),
with the same methods: token and TLS from a Connection, each call within a deadline, UNAVAILABLE
retried with backoff, failures raised as MenuflowError subclasses that carry the server's field
violations. Responses are the generated protobuf messages (menuflow.v1.flow_pb2); to_dict turns
one into plain values.

    from menuflow.client import Connection, FlowClient, message_template

    with FlowClient(Connection.from_env()) as flow:   # MENUFLOW_TARGET, MENUFLOW_TOKEN, ...
        waiting = flow.get_conversation("15551234567")
        flow.update_conversation("15551234567", context={"paid": True}, step="paid",
                                 expected_revision=waiting.revision, send=True)
"""

from menuflow.client.aio import AsyncFlowClient
from menuflow.client.connection import Connection
from menuflow.client.errors import (
    Aborted,
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    MenuflowError,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from menuflow.client.requests import message_template, to_dict
from menuflow.client.sync import FlowClient

__all__ = [
    "Aborted",
    "AlreadyExists",
    "AsyncFlowClient",
    "Connection",
    "DeadlineExceeded",
    "FailedPrecondition",
    "FieldViolation",
    "FlowClient",
    "InvalidArgument",
    "MenuflowError",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "message_template",
    "to_dict",
]
