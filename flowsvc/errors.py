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
        self.summary = message
        self.violations = list(violations)
        if self.violations:
            message = "\n".join((self.headline(), *self.lines()))
        super().__init__(message)

    def headline(self) -> str:
        """'template 'x' is invalid (2 problems):' the line above the list of problems."""
        return f"{self.summary} ({count(len(self.violations), 'problem')}):"

    def lines(self) -> list[str]:
        """Each problem on its own line, as the readable message lists them (a line break in a
        quoted value would split one problem over two lines)."""
        return [" ".join(f"- {field}: {reason}".splitlines()) for field, reason in self.violations]


def count(number: int, noun: str) -> str:
    """'1 problem', '2 problems'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


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
