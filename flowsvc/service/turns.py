"""A customer's turn as the service runs it: what it is for, in which round of a transaction it
runs, what its decision writes, and what the caller gets back.

A turn is a message handled (HandleMessage(s)), a conversation started (StartConversation) or
steered (UpdateConversation), or a message sent beside it (SendMessage).
One transaction runs several customers' turns in rounds: round n holds each customer's n-th
turn, customers in lock order, so that one customer's turns run in the order given, each reading
what the one before it wrote, and two transactions never wait for each other's locks in a cycle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from flowsvc.engine import CallResult, Decision, Inbound, Outcome
from flowsvc.engine.message_templates import MessageTemplate
from flowsvc.errors import ResourceExhausted
from flowsvc.service.conversations import Conversation, from_state
from flowsvc.service.outbound import FreeForm
from flowsvc.service.outbox_entries import OutboxEntry
from flowsvc.store import turns
from flowsvc.store.customers import Customer
from flowsvc.store.json_text import compact, compact_unicode
from flowsvc.store.outbox import Lease


@dataclass(frozen=True)
class MessageTurn:
    """An inbound message to handle, deduped by its id."""

    customer: Customer
    message_id: str
    inbound: Inbound
    sent_at: datetime | None = None  # when the customer sent it, if the webhook said
    content: Mapping[str, Any] = field(default_factory=dict)  # as an agent sees it (handoff)

    dedupe: ClassVar[bool] = True  # read and record source_id
    fresh: ClassVar[bool] = False  # continues the customer's conversation
    keep: ClassVar[bool] = False  # writes the conversation
    message_template: ClassVar[MessageTemplate | None] = None  # never needed: the customer wrote

    @property
    def source_id(self) -> str:
        return self.message_id


@dataclass(frozen=True)
class StartTurn:
    """A conversation to start, replacing whatever the customer had; deduped only by a request
    id (a start without one starts anew each time)."""

    customer: Customer
    source_id: str
    dedupe: bool
    template_name: str
    context: Mapping[str, Any]
    step: str = "initial"
    ttl: timedelta | None = None  # how long it waits for the customer (None: as the template says)
    message_template: MessageTemplate | None = None  # sent instead outside the service window

    fresh: ClassVar[bool] = True  # the conversation is created now
    keep: ClassVar[bool] = False


@dataclass(frozen=True)
class UpdateTurn:
    """A running conversation steered by another service: context merged, moved to a step."""

    customer: Customer
    source_id: str
    dedupe: bool
    context: Mapping[str, Any]
    step: str  # "" stays in the current step (or a new flow's initial)
    flow: str  # "" stays in the conversation's template
    expected_revision: int  # 0: no guard
    send: bool  # queue the messages of the step it arrives in
    message_template: MessageTemplate | None = None

    fresh: ClassVar[bool] = False
    keep: ClassVar[bool] = False


@dataclass(frozen=True)
class SendTurn:
    """A message sent to a customer beside their conversation, which it leaves as it is."""

    customer: Customer
    source_id: str
    dedupe: bool
    free_form: FreeForm | None
    message_template: MessageTemplate | None
    agent: str = ""  # who sent it, for a handed-off customer

    fresh: ClassVar[bool] = False
    keep: ClassVar[bool] = True


@dataclass(frozen=True)
class HandOffTurn:
    """A conversation handed to people by another service (HandOff): paused, kept as it is."""

    customer: Customer
    source_id: str
    dedupe: bool
    reason: str
    queue: str
    priority: int
    until: datetime | None
    text: str  # said to the customer as they are handed off ("": nothing)

    fresh: ClassVar[bool] = False
    keep: ClassVar[bool] = True
    message_template: ClassVar[MessageTemplate | None] = None


@dataclass(frozen=True)
class ResumeTurn:
    """A handed-off customer returned to the bot: by an agent (Resume), or after idling."""

    customer: Customer
    source_id: str
    dedupe: bool
    step: str
    flow: str
    end: bool
    context: Mapping[str, Any]
    text: str  # said first ("": nothing)
    expected_revision: int = 0
    idle: bool = False  # the sweep's: only if the handoff is still due, and silent if it may not

    fresh: ClassVar[bool] = False
    keep: ClassVar[bool] = False
    message_template: ClassVar[MessageTemplate | None] = None


@dataclass(frozen=True)
class SilenceTurn:
    """A step's timer that came due (the customer said nothing): handled like a customer's
    message, under their lock, deduped by the timer (the conversation row and the due time)."""

    customer: Customer
    conversation_id: int
    due: datetime

    dedupe: ClassVar[bool] = True
    fresh: ClassVar[bool] = False
    keep: ClassVar[bool] = False
    message_template: ClassVar[MessageTemplate | None] = None

    @property
    def source_id(self) -> str:
        return f"timer:{self.conversation_id}:{self.due.isoformat()}"


@dataclass(frozen=True)
class CallResultTurn:
    """A call's result handed back (FinishCall): the conversation waiting in the call's step
    moves on. Deduped by the call's id, so a result delivered twice continues it once."""

    customer: Customer
    call_id: int
    result: CallResult
    step: str = ""  # the call's step, as its row says (filled in the transaction)

    dedupe: ClassVar[bool] = True
    fresh: ClassVar[bool] = False
    keep: ClassVar[bool] = False
    message_template: ClassVar[MessageTemplate | None] = None  # replies to the customer's turn

    @property
    def source_id(self) -> str:
        return call_source_id(self.call_id)


def call_source_id(call_id: int) -> str:
    """The dedupe id of a call's result (never a Meta message id: those start with "wamid.")."""
    return f"call:{call_id}"


Turn = (
    MessageTurn
    | StartTurn
    | UpdateTurn
    | SendTurn
    | HandOffTurn
    | ResumeTurn
    | SilenceTurn
    | CallResultTurn
)


@dataclass(frozen=True)
class LeaseRequest:
    """Who asks for the replies of a turn, and for how long: replies nothing else of the
    customer's waits ahead of are leased to `owner` at once, so it can send them without a claim
    (no owner: they wait for the outbox pump)."""

    owner: str = ""
    seconds: int = 60

    def lease(self, now: datetime) -> Lease:
        return Lease(self.owner, now + timedelta(seconds=self.seconds or 60))


@dataclass
class Handled:
    """What handling (or starting) produced."""

    outcome: str
    duplicate: bool
    conversation: Conversation | None
    messages: list[OutboxEntry] = field(default_factory=list)
    reference: str = ""  # the result's, when this turn completed the flow


def rounds(todo: Sequence[Turn]) -> list[list[int]]:
    """The turns' indexes in rounds: round n holds each customer's n-th turn, customers in lock
    order (by business number, then customer)."""
    found: list[list[int]] = []
    seen: dict[Customer, int] = {}
    for index in sorted(range(len(todo)), key=lambda i: todo[i].customer):  # stable: keeps order
        customer = todo[index].customer
        seen[customer] = seen.get(customer, -1) + 1
        if seen[customer] == len(found):
            found.append([])
        found[seen[customer]].append(index)
    return found


def closing(
    turn: Turn,
    decision: Decision,
    opened: turns.Opened,
    now: datetime,
    lease: LeaseRequest,
    max_context_bytes: int,
) -> turns.Closing:
    """What a decision writes: conversation, result, outbox messages, the dedupe record."""
    state = decision.state
    context_json = ""
    if state is not None and not turn.keep:
        context_json = compact(state.context)
        if len(context_json) > max_context_bytes:
            raise ResourceExhausted(
                f"the conversation's context would grow to {len(context_json)} bytes, "
                f"past the limit of {max_context_bytes}"
            )
    return turns.Closing(
        source_id=turn.source_id,
        record=turn.dedupe,
        outcome=str(decision.outcome),
        state=state,
        context_json=context_json,
        result=decision.result,
        bodies=[compact_unicode(body) for body in decision.messages],
        lease=lease.lease(now)
        if lease.owner and decision.messages and not opened.pending
        else None,
        forgets_expiry=opened.expired_at is not None and decision.outcome != Outcome.IGNORED,
        revision=opened.turn,
        # Nothing to write when the conversation stays as it was: a message beside it, or one
        # answered by nothing (its revision does not move either).
        keep=turn.keep or decision.outcome in (Outcome.IGNORED, Outcome.HANDED_OFF),
        language=decision.language if decision.language != opened.language else None,
    )


def handled_now(
    turn: Turn, opened: turns.Opened, written: turns.Closing, ids: list[int], now: datetime
) -> Handled:
    """A turn just written: its outcome, the conversation now, the replies it queued."""
    state, lease = written.state, written.lease
    created_at = now
    if not turn.fresh and opened.state is not None and opened.created_at:
        created_at = opened.created_at
    customer = turn.customer
    revision = written.revision if not written.keep else opened.revision
    return Handled(
        outcome=written.outcome,
        duplicate=False,
        conversation=from_state(customer, state, created_at, revision) if state else None,
        reference=written.result.reference if written.result else "",
        messages=[
            OutboxEntry(
                id=id_,
                phone_number_id=customer[0],
                phone_number=customer[1],
                source_id=written.source_id,
                body_json=body,
                lease_owner=lease.owner if lease else None,
                lease_expires_at=lease.expires_at if lease else None,
                created_at=now,
            )
            for id_, body in zip(ids, written.bodies, strict=True)
        ],
    )


def handled_before(turn: Turn, opened: turns.Opened, replies: list[OutboxEntry]) -> Handled:
    """A message handled before (a redelivery): its stored outcome and replies, the
    conversation now."""
    state = opened.state
    return Handled(
        outcome=opened.prior_outcome or "",
        duplicate=True,
        conversation=from_state(
            turn.customer, state, opened.created_at or state.last_interaction, opened.revision
        )
        if state is not None
        else None,
        messages=replies,
    )
