"""What advance() reads and returns: a conversation's state, one inbound message, the decision.

Everything in State is JSON-serialisable once `history` is turned into lists: store `context`
as a JSON object as it is, and `history` with `history_to_json` / `history_from_json`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from flowsvc.engine.calls import CallRequest

HistoryEntry = tuple[str, int, str]
"""(template name, version, step) of a step the customer left, for "back"."""


@dataclass(frozen=True)
class Inbound:
    """One inbound message, as the gateway parsed it: a text, a tap, or something else."""

    text: str | None = None
    selection_id: str | None = None
    selection_title: str = ""
    unsupported_type: str | None = None
    contact_name: str = ""
    # What a media, location or contacts message carried (its kind is unsupported_type): a
    # step that accepts that kind stores it in the context.
    attachment: Mapping[str, Any] | None = None
    # A Flow's reply (kind "flow"): the flow_token it carries, "" when it carries none; its
    # other response fields are the attachment.
    flow_token: str | None = None

    def clipped(self, limit: int) -> Inbound:
        """This message with each of its texts cut to `limit` characters, however long it came."""
        return replace(
            self,
            text=None if self.text is None else self.text[:limit],
            selection_id=None if self.selection_id is None else self.selection_id[:limit],
            selection_title=self.selection_title[:limit],
            contact_name=self.contact_name[:limit],
        )


@dataclass(frozen=True)
class State:
    """A running conversation: where it waits, what it collected, and where it came from.

    `context` holds JSON values only (str, int, bool, None, lists, objects; computed and decimal
    amounts are strings such as "7.00").
    """

    flow: str
    version: int
    step: str
    context: Mapping[str, Any]
    history: tuple[HistoryEntry, ...]
    expires_at: datetime
    last_interaction: datetime
    # The step's timeout (engine.timers): when the customer's silence is next acted on (None:
    # never) and how many reminders they were sent since they last wrote or arrived.
    silence_due_at: datetime | None = None
    reminders: int = 0


class Outcome(enum.StrEnum):
    """What handling a message did; member NAME maps to proto `OUTCOME_<NAME>`."""

    STARTED = enum.auto()
    ADVANCED = enum.auto()
    INVALID_INPUT = enum.auto()
    STALE_SELECTION = enum.auto()
    COMPLETED = enum.auto()
    CANCELLED = enum.auto()
    RESTARTED = enum.auto()
    WENT_BACK = enum.auto()
    HELP = enum.auto()
    UNSUPPORTED = enum.auto()
    EXPIRED = enum.auto()
    IGNORED = enum.auto()
    HANDED_OFF = enum.auto()
    REMINDED = enum.auto()  # a step's timer sent a reminder
    TIMED_OUT = enum.auto()  # a step's timer took the customer on (or ended the conversation)
    WAITING = enum.auto()  # the customer wrote while the step's call runs: told it is on its way


@dataclass(frozen=True)
class HandoffSpec:
    """A template step's `handoff`: the customer goes to people when the step is entered."""

    queue: str = ""
    priority: int = 0
    reason: str = ""
    resume_text: str | None = None  # said when the bot takes the customer back after idling


@dataclass(frozen=True)
class ResultDraft:
    """A completed flow's result for the service to store under `reference`."""

    template: str
    version: int
    reference: str
    context: Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """The engine's answer: the outcome, the new state (None: no conversation), what to send."""

    outcome: Outcome
    state: State | None
    messages: tuple[dict[str, Any], ...]
    result: ResultDraft | None = None
    handoff: HandoffSpec | None = None  # the step entered hands the customer to people
    call: CallRequest | None = None  # the step entered calls the business's API (queued)
    language: str | None = None  # the language the customer chose in this turn (to store)


def history_to_json(history: tuple[HistoryEntry, ...]) -> list[list[Any]]:
    """History as JSON lists: [[flow, version, step], ...]."""
    return [[flow, version, step] for flow, version, step in history]


def history_from_json(raw: Any) -> tuple[HistoryEntry, ...]:
    """The inverse of history_to_json; malformed entries are dropped, never raised on."""
    if not isinstance(raw, list):
        return ()
    entries = []
    for item in raw:
        if (
            isinstance(item, list | tuple)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], int | float)
            and not isinstance(item[1], bool)
            and isinstance(item[2], str)
        ):
            entries.append((item[0], int(item[1]), item[2]))
    return tuple(entries)
