"""FlowService's failures as exceptions: one class per status code a caller acts on, each with
the server's message and, for INVALID_ARGUMENT, every field violation it listed."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    """One problem with a request: the field's path and what is wrong with it."""

    field: str
    description: str


class MenuflowError(Exception):
    """A FlowService call failed; `code` and `message` are the server's."""

    def __init__(
        self, code: grpc.StatusCode, message: str, violations: tuple[FieldViolation, ...] = ()
    ) -> None:
        self.code = code
        self.message = message
        self.violations = violations
        lines = [f"{code.name}: {message}"]
        lines += [f"  {v.field}: {v.description}" for v in violations]
        super().__init__("\n".join(lines))


class InvalidArgument(MenuflowError):
    """The request is malformed; `violations` lists every problem."""


class NotFound(MenuflowError):
    """The template, conversation or result does not exist."""


class AlreadyExists(MenuflowError):
    """A template of that name exists already."""


class FailedPrecondition(MenuflowError):
    """Not possible now: e.g. outside the customer service window, or an unknown step."""


class Aborted(MenuflowError):
    """Someone changed it first (a stale expected revision): read again and decide again."""


class PermissionDenied(MenuflowError):
    """The token's role may not make this call."""


class Unauthenticated(MenuflowError):
    """No token, or one flowsvc does not know."""


class ResourceExhausted(MenuflowError):
    """A size limit was reached."""


class OutOfRange(MenuflowError):
    """A position past what exists: events after the id were deleted by retention, or it is past
    the newest event (the violation on after_id says which)."""


class Unavailable(MenuflowError):
    """flowsvc (or its database) could not be reached, even after the retries."""


class DeadlineExceeded(MenuflowError):
    """No answer within the call's deadline."""


_CLASSES: dict[grpc.StatusCode, type[MenuflowError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def from_rpc_error(error: grpc.RpcError) -> MenuflowError:
    """The exception for a failed call, with the BadRequest violations it carries."""
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    violations: list[FieldViolation] = []
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        request = error_details_pb2.BadRequest()
        if detail.Unpack(request):
            violations += [FieldViolation(v.field, v.description) for v in request.field_violations]
    if violations and "\n" in message:  # the list is shown from the violations instead
        message = message.split("\n", 1)[0].rsplit(" (", 1)[0]
    return _CLASSES.get(code, MenuflowError)(code, message, tuple(violations))
