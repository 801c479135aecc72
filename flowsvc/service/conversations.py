"""Conversations: each inbound message handled exactly once, in one transaction, around the engine.

A transaction runs the turns of one call (HandleMessage or StartConversation: one; HandleMessages:
several customers' at once, sharing statements and the commit). On PostgreSQL it takes two round
trips per round of customers (store.turns), however many customers there are:
  1. lock the customers' rows (serializes one customer's messages across every replica), then read
     each message id's dedupe record, the conversation and whether earlier replies are unsent;
  2. a redelivery returns the stored outcome and outbox messages; otherwise run the engine (one
     more query if a step needs the customer's orders);
  3. save or delete the conversations, store completed flows' results, queue the replies in the
     outbox (leased to the caller when nothing of the customer's waits ahead of them) and record
     the message ids with their outcomes.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import exc, select
from sqlalchemy.orm import Session, sessionmaker

from flowsvc.engine import (
    Catalog,
    Decision,
    EngineConfig,
    Facts,
    Inbound,
    Needs,
    OrderFact,
    State,
    advance,
    new_reference,
    start,
)
from flowsvc.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import conversations, outbox, processed, results, turns
from flowsvc.store.db import UNREACHABLE
from flowsvc.store.models import ConversationState, OutboxMessage

MAX_TEXT_CHARS = 4096
_DIGITS = re.compile(r"[0-9]{1,32}")
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Message:
    """One inbound message (the gateway's parse of a webhook)."""

    message_id: str
    phone_number_id: str
    phone_number: str
    contact_name: str = ""
    text: str | None = None
    selection_id: str | None = None
    selection_title: str = ""
    unsupported_type: str | None = None


@dataclass(frozen=True)
class Conversation:
    """A conversation as clients see it."""

    phone_number_id: str
    phone_number: str
    flow: str
    template_version: int
    current_step: str
    context: Mapping[str, Any]
    last_interaction: datetime
    expires_at: datetime
    created_at: datetime | None


@dataclass
class Handled:
    """What handling (or starting) produced."""

    outcome: str
    duplicate: bool
    conversation: Conversation | None
    messages: list[OutboxMessage | outbox.Queued] = field(default_factory=list)


def _conversation(row: ConversationState | None) -> Conversation | None:
    if row is None:
        return None
    return Conversation(
        phone_number_id=row.phone_number_id,
        phone_number=row.phone_number,
        flow=row.conversation_flow,
        template_version=row.template_version,
        current_step=row.current_step,
        context=row.context,
        last_interaction=row.last_interaction,
        expires_at=row.expires_at,
        created_at=row.created_at,
    )


def _state_view(lane: tuple[str, str], state: State, created_at: datetime) -> Conversation:
    return Conversation(
        phone_number_id=lane[0],
        phone_number=lane[1],
        flow=state.flow,
        template_version=state.version,
        current_step=state.step,
        context=state.context,
        last_interaction=state.last_interaction,
        expires_at=state.expires_at,
        created_at=created_at,
    )


def _duplicate(session: Session, lane: tuple[str, str], opened: turns.Opened) -> Handled:
    """A message handled before: its stored outcome and outbox messages, the conversation now."""
    state = opened.state
    return Handled(
        outcome=opened.prior_outcome or "",
        duplicate=True,
        conversation=_state_view(lane, state, opened.created_at or state.last_interaction)
        if state is not None
        else None,
        messages=list(outbox.by_ids(session, opened.prior_outbox_ids)),
    )


def _check_customer(phone_number_id: str, phone_number: str) -> list[tuple[str, str]]:
    problems = []
    if not _DIGITS.fullmatch(phone_number_id):
        problems.append(("customer.phone_number_id", "required: Meta's id of the business number"))
    if not _DIGITS.fullmatch(phone_number):
        problems.append(("customer.phone_number", "required: the customer's wa_id (digits only)"))
    return problems


def _inbound(message: Message) -> Inbound:
    """What the engine reads of a message, once the message is checked."""
    _check_message(message)
    return Inbound(
        text=message.text,
        selection_id=message.selection_id,
        selection_title=message.selection_title,
        unsupported_type=message.unsupported_type,
        contact_name=message.contact_name,
    )


def _check_message(message: Message) -> None:
    problems = []
    if not message.message_id or len(message.message_id) > 255:
        problems.append(("message.message_id", "required, at most 255 characters"))
    problems += [
        (f"message.{f}", r)
        for f, r in _check_customer(message.phone_number_id, message.phone_number)
    ]
    if message.text is None and message.selection_id is None and message.unsupported_type is None:
        problems.append(
            ("message.content", "one of text, selection or unsupported_type is required")
        )
    if message.text is not None and len(message.text) > MAX_TEXT_CHARS:
        problems.append(("message.text", f"longer than WhatsApp's {MAX_TEXT_CHARS} characters"))
    if problems:
        raise InvalidArgument("bad inbound message", problems)


@dataclass(frozen=True)
class _Turn:
    """One customer's turn: whom it is for, what it is recorded as, and how it decides."""

    lane: tuple[str, str]
    source_id: str  # the dedupe key and the outbox rows' source
    dedupe: bool  # read and record source_id (a start without a request id never is)
    decide: Callable[[Session, State | None, datetime], Decision]  # runs the engine
    fresh: bool = False  # the conversation starts anew (created now) whatever there was


def _rounds(todo: Sequence[_Turn]) -> list[list[int]]:
    """The turns' indexes in rounds: round n holds each customer's n-th turn, customers in lock
    order (by business number, then customer)."""
    rounds: list[list[int]] = []
    seen: dict[tuple[str, str], int] = {}
    for index in sorted(range(len(todo)), key=lambda i: todo[i].lane):  # stable: keeps order
        lane = todo[index].lane
        seen[lane] = seen.get(lane, -1) + 1
        if seen[lane] == len(rounds):
            rounds.append([])
        rounds[seen[lane]].append(index)
    return rounds


def _handled(
    lane: tuple[str, str],
    closing: turns.Closing,
    ids: list[int],
    now: datetime,
    created_at: datetime,
) -> Handled:
    state, lease = closing.state, closing.lease
    return Handled(
        outcome=closing.outcome,
        duplicate=False,
        conversation=_state_view(lane, state, created_at) if state else None,
        messages=[
            outbox.Queued(
                id=id_,
                phone_number_id=lane[0],
                phone_number=lane[1],
                source_id=closing.source_id,
                body_json=body,
                lease_owner=lease.owner if lease else None,
                lease_expires_at=lease.expires_at if lease else None,
                created_at=now,
            )
            for id_, body in zip(ids, closing.bodies, strict=True)
        ],
    )


class Conversations:
    """HandleMessage, StartConversation and the conversation admin calls."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalog: TemplateCatalog,
        config: EngineConfig,
        *,
        max_context_bytes: int = 16_384,
        dedupe_retention: timedelta = timedelta(days=8),
        clock: Clock = utcnow,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._config = config
        self._max_context_bytes = max_context_bytes
        self._dedupe_retention = dedupe_retention
        self._clock = clock

    def handle(self, message: Message, lease_owner: str = "", lease_seconds: int = 60) -> Handled:
        turn = self._message_turn(message, _inbound(message))
        return self._retrying_reference(
            partial(self._single, turn, lease_owner, lease_seconds), idempotent=True
        )

    def handle_many(
        self, messages: Sequence[Message], lease_owner: str = "", lease_seconds: int = 60
    ) -> list[Handled | Exception]:
        """Handle `messages` as `handle` would, in one transaction; each message's result is its
        Handled or the exception `handle` would have raised.

        Sharing the transaction shares its statements and its commit; what it must not share is
        failure. When any turn fails, the transaction is rolled back and every message is handled
        again on its own, so one bad message fails alone. Only a database that cannot be reached
        fails them all (trying each alone would wait for it once per message).
        """
        done: dict[int, Handled | Exception] = {}
        todo: dict[int, _Turn] = {}
        for index, message in enumerate(messages):
            try:
                todo[index] = self._message_turn(message, _inbound(message))
            except InvalidArgument as error:
                done[index] = error
        handled: dict[int, Handled | Exception]
        try:
            outcomes = self._transaction(list(todo.values()), lease_owner, lease_seconds)
            handled = dict(zip(todo, outcomes, strict=True))
        except UNREACHABLE as error:
            if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
                handled = self._one_by_one(todo, lease_owner, lease_seconds)
            else:
                handled = dict.fromkeys(todo, error)
        except Exception:
            handled = self._one_by_one(todo, lease_owner, lease_seconds)
        done |= handled
        return [done[index] for index in range(len(messages))]

    def _one_by_one(
        self, todo: dict[int, _Turn], lease_owner: str, lease_seconds: int
    ) -> dict[int, Handled | Exception]:
        done: dict[int, Handled | Exception] = {}
        for index, turn in todo.items():
            try:
                done[index] = self._retrying_reference(
                    partial(self._single, turn, lease_owner, lease_seconds), idempotent=True
                )
            except Exception as error:
                done[index] = error
        return done

    def _single(self, turn: _Turn, lease_owner: str, lease_seconds: int) -> Handled:
        return self._transaction([turn], lease_owner, lease_seconds)[0]

    def _message_turn(self, message: Message, inbound: Inbound) -> _Turn:
        lane = (message.phone_number_id, message.phone_number)

        def decide(session: Session, state: State | None, now: datetime) -> Decision:
            # A conversation whose template was deleted meanwhile is not in the catalog: the
            # engine then starts over as for a first message.
            catalog = self._catalog.get(session, (state.flow, state.version) if state else None)
            return self._decide(
                session,
                catalog,
                state,
                inbound,
                lane,
                now,
                lambda c, s, **kw: advance(c, s, inbound, **kw),
            )

        return _Turn(lane, message.message_id, dedupe=True, decide=decide)

    def start(
        self,
        phone_number_id: str,
        phone_number: str,
        template_name: str,
        context: Mapping[str, Any],
        request_id: str = "",
        lease_owner: str = "",
        lease_seconds: int = 60,
    ) -> Handled:
        """Start `template_name` for a customer, replacing any conversation they have."""
        problems = _check_customer(phone_number_id, phone_number)
        if not template_name:
            problems.append(("template_name", "required"))
        if len(request_id) > 200:
            problems.append(("request_id", "at most 200 characters"))
        if problems:
            raise InvalidArgument("bad start request", problems)
        lane = (phone_number_id, phone_number)

        def decide(session: Session, _state: State | None, now: datetime) -> Decision:
            catalog = self._catalog.get(session)
            template = catalog.current(template_name)
            if template is None:
                raise NotFound(f"template {template_name!r} does not exist")
            if not template.is_active:
                raise FailedPrecondition(f"template {template_name!r} is not active")
            return self._decide(
                session,
                catalog,
                None,
                Inbound(),
                lane,
                now,
                lambda c, s, **kw: start(c, template_name, context=dict(context), **kw),
            )

        def unit() -> Handled:
            # Without a request id a start is never deduped: each call starts anew.
            source_id = f"start:{request_id}" if request_id else f"start:{secrets.token_hex(8)}"
            turn = _Turn(lane, source_id, dedupe=bool(request_id), decide=decide, fresh=True)
            return self._single(turn, lease_owner, lease_seconds)

        return self._retrying_reference(unit)

    def _transaction(
        self, todo: Sequence[_Turn], lease_owner: str, lease_seconds: int
    ) -> list[Handled]:
        """Run the turns in one transaction, in rounds: each round opens (locks and reads) its
        customers at once, runs the engine for each, and closes them (writes) at once.

        Customers are locked in one order (by business number, then customer), so that two
        transactions never wait for each other's locks in a cycle. One customer's turns go in
        successive rounds, in the order given, each reading what the one before it wrote.
        """
        handled: dict[int, Handled] = {}
        with self._sessions.begin() as session:
            for round_ in _rounds(todo):
                now = self._clock()
                openings = [
                    turns.Opening(todo[i].lane, todo[i].source_id if todo[i].dedupe else None)
                    for i in round_
                ]
                opened = turns.open_turns(session.connection(), openings, lease_owner, now)
                closing: list[tuple[int, turns.Closing, datetime]] = []
                for index, found in zip(round_, opened, strict=True):
                    turn = todo[index]
                    if found.prior_outcome is not None:
                        handled[index] = _duplicate(session, turn.lane, found)
                        continue
                    decision = turn.decide(session, found.state, now)
                    writes = self._closing(turn, decision, found, now, lease_owner, lease_seconds)
                    created_at = now
                    if not turn.fresh and found.state is not None and found.created_at:
                        created_at = found.created_at
                    closing.append((index, writes, created_at))
                written = turns.close_turns(
                    session.connection(), now, [(todo[i].lane, c) for i, c, _ in closing]
                )
                for (index, writes, created_at), ids in zip(closing, written, strict=True):
                    handled[index] = _handled(todo[index].lane, writes, ids, now, created_at)
        return [handled[index] for index in range(len(todo))]

    def _decide(
        self,
        session: Session,
        catalog: Catalog,
        state: State | None,
        inbound: Inbound,
        lane: tuple[str, str],
        now: datetime,
        run: Callable[..., Decision | Needs],
    ) -> Decision:
        """Run the engine; if it needs the customer's orders, read them (one query) and rerun."""
        # A reference is unique in practice (32^6 values); if two results ever draw the same one,
        # the unique constraint fails the transaction and _retrying_reference runs it again.
        reference = new_reference(secrets.randbelow)
        arguments = {"to": lane[1], "now": now, "config": self._config, "reference": reference}
        decision = run(catalog, state, **arguments)
        if isinstance(decision, Needs):
            rows = results.for_customer(
                session,
                *lane,
                reference=decision.reference,
                templates=decision.templates,
                limit=decision.recent_limit,
            )
            facts = Facts(
                orders=tuple(
                    OrderFact(
                        r.reference, r.template_name, r.template_version, r.context, r.created_at
                    )
                    for r in rows
                )
            )
            decision = run(catalog, state, facts=facts, **arguments)
        assert isinstance(decision, Decision), "the engine needs facts only once"
        return decision

    def _closing(
        self,
        turn: _Turn,
        decision: Decision,
        opened: turns.Opened,
        now: datetime,
        lease_owner: str,
        lease_seconds: int,
    ) -> turns.Closing:
        """What a decision writes: conversation, result, outbox messages, the dedupe record."""
        state = decision.state
        context_json = ""
        if state is not None:
            context_json = json.dumps(state.context, separators=(",", ":"))
            if len(context_json) > self._max_context_bytes:
                raise ResourceExhausted(
                    f"the conversation's context would grow to {len(context_json)} bytes, "
                    f"past the limit of {self._max_context_bytes}"
                )
        lease = None
        if lease_owner and decision.messages and not opened.pending:
            lease = outbox.Lease(lease_owner, now + timedelta(seconds=lease_seconds or 60))
        return turns.Closing(
            source_id=turn.source_id,
            record=turn.dedupe,
            outcome=str(decision.outcome),
            state=state,
            context_json=context_json,
            result=decision.result,
            bodies=[
                json.dumps(body, ensure_ascii=False, separators=(",", ":"))
                for body in decision.messages
            ],
            lease=lease,
        )

    @staticmethod
    def _retrying_reference(unit: Callable[[], Handled], *, idempotent: bool = False) -> Handled:
        """Run `unit` again if its result reference clashed, or, when it is idempotent (deduped
        by message id), if its database connection turned out dead (connections used moments
        ago are not pinged first; see store.db)."""
        for attempt in range(3):
            try:
                return unit()
            except exc.IntegrityError:
                if attempt == 2:
                    raise
            except exc.DBAPIError as error:
                if not (idempotent and error.connection_invalidated) or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, phone_number_id: str, phone_number: str) -> Conversation:
        problems = _check_customer(phone_number_id, phone_number)
        if problems:
            raise InvalidArgument("bad customer", problems)
        with self._sessions() as session:
            found = _conversation(conversations.get(session, phone_number_id, phone_number))
        if found is None or found.expires_at <= self._clock():
            raise NotFound("the customer has no active conversation")
        return found

    def list(
        self, flow: str, step: str, phone_number_id: str, requested_size: int, token: str
    ) -> tuple[list[Conversation], str]:
        size = page_size(requested_size)
        after = decode_token(token)
        query = (
            select(ConversationState)
            .where(ConversationState.expires_at > self._clock())
            .order_by(ConversationState.id)
            .limit(size + 1)
        )
        if flow:
            query = query.where(ConversationState.conversation_flow == flow)
        if step:
            query = query.where(ConversationState.current_step == step)
        if phone_number_id:
            query = query.where(ConversationState.phone_number_id == phone_number_id)
        if after is not None:
            query = query.where(ConversationState.id > int(after))
        with self._sessions() as session:
            rows = list(session.scalars(query))
        items = [c for c in map(_conversation, rows[:size]) if c is not None]
        return items, encode_token(rows[size - 1].id) if len(rows) > size else ""

    def end(self, phone_number_id: str, phone_number: str) -> Conversation:
        problems = _check_customer(phone_number_id, phone_number)
        if problems:
            raise InvalidArgument("bad customer", problems)
        with self._sessions.begin() as session:
            turns.lock_customer(session.connection(), (phone_number_id, phone_number))
            found = _conversation(conversations.get(session, phone_number_id, phone_number))
            if found is None:
                raise NotFound("the customer has no active conversation")
            conversations.remove(session, phone_number_id, phone_number)
        return found

    def sweep(self) -> tuple[int, int]:
        """Delete expired conversations and dedupe records past retention: (conversations, ids)."""
        now = self._clock()
        with self._sessions.begin() as session:
            expired = conversations.remove_expired(session, now)
            old = processed.remove_older_than(session, now - self._dedupe_retention)
        return expired, old
