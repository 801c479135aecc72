"""flowsvc's error vocabulary. The servicer maps each class to one gRPC status code, in one place.

FlowError
├── InvalidArgument      INVALID_ARGUMENT, with every (field, reason) violation
├── NotFound             NOT_FOUND
├── AlreadyExists        ALREADY_EXISTS
├── FailedPrecondition   FAILED_PRECONDITION
├── Aborted              ABORTED
├── ResourceExhausted    RESOURCE_EXHAUSTED
└── OutOfRange           OUT_OF_RANGE, with the (field, reason) it concerns
"""

from __future__ import annotations

from collections.abc import Iterable


class FlowError(Exception):
    """Something a client asked for that flowsvc will not do; the message says why."""


class InvalidArgument(FlowError):
    """The request is malformed; `violations` lists every (field path, reason) found."""

    def __init__(self, message: str, violations: Iterable[tuple[str, str]] = ()) -> None:
        self.violations = list(violations)
        if self.violations:
            details = "; ".join(f"{field}: {reason}" for field, reason in self.violations)
            message = f"{message} ({len(self.violations)} problems: {details})"
        super().__init__(message)


class NotFound(FlowError):
    """The template, version, conversation or result does not exist."""


class AlreadyExists(FlowError):
    """A template with that name exists already."""


class FailedPrecondition(FlowError):
    """The system is not in a state that allows the request (e.g. a template others target)."""


class Aborted(FlowError):
    """A concurrent change got there first (e.g. a conversation is no longer at the revision the
    caller read); read again and decide again."""


class ResourceExhausted(FlowError):
    """A size limit was reached (e.g. a conversation's context grew past its cap)."""


class OutOfRange(InvalidArgument):
    """A position past what exists (e.g. resuming after an event retention deleted, or after one
    not written yet); `violations` says which field and what range is valid."""
