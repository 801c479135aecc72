"""HandleMessage(s), StartConversation, UpdateConversation and SendMessage: each turn exactly
once, in one transaction, around the engine.

A transaction runs the turns of one call (several customers' for HandleMessages, sharing the
statements and the commit) in rounds (service.turns). Each round:
  1. locks its customers and reads each turn's dedupe record, conversation and whether earlier
     replies are unsent (store.turns.lock_and_read);
  2. answers a redelivery with its stored outcome; otherwise runs the engine, and once more with
     the customer's orders if a step needs them (one query); a turn another service asked for
     sends free-form messages only within the customer service window (service.steering);
  3. writes the conversations, results, outbox replies and dedupe records (store.turns.write),
     and records the turns' events (service.turn_events), written as the commit's last statement
     (store.events).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import exc
from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.engine import (
    Catalog,
    Decision,
    EngineConfig,
    Facts,
    Needs,
    OrderFact,
    Outcome,
    State,
    advance,
    enter,
    new_reference,
    start,
)
from flowsvc.engine.message_templates import MessageTemplate
from flowsvc.engine.template import INITIAL
from flowsvc.errors import FailedPrecondition, FlowError, InvalidArgument, NotFound
from flowsvc.service import (
    handoff,
    handoff_writes,
    messagelog,
    outbox_entries,
    steering,
    turn_events,
)
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.inbound import InboundMessage, content, engine_input
from flowsvc.service.turns import (
    Handled,
    HandOffTurn,
    LeaseRequest,
    MessageTurn,
    ResumeTurn,
    SendTurn,
    StartTurn,
    Turn,
    UpdateTurn,
    closing,
    handled_before,
    handled_now,
    rounds,
)
from flowsvc.store import events, handoffs, outbox, results, turns
from flowsvc.store.customers import Customer
from flowsvc.store.db import UNREACHABLE

MAX_BATCH = 100  # messages in one HandleMessages call
MAX_TTL = timedelta(days=30)  # how long a started conversation may wait for the customer


@dataclass(frozen=True)
class StartRequest:
    """StartConversation: start `template_name` for a customer, replacing any conversation."""

    phone_number_id: str
    phone_number: str
    template_name: str
    context: Mapping[str, Any]
    request_id: str = ""  # dedupes retries of the same start; none: every call starts anew
    initial_step: str = ""  # "": the template's initial step
    ttl: timedelta | None = None  # None: the template's expiry (or the default)
    message_template: MessageTemplate | None = None  # sent instead outside the service window


class MessageHandling:
    """Runs turns: one message, a batch of messages, or a conversation start."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalog: TemplateCatalog,
        config: EngineConfig,
        *,
        max_context_bytes: int = 16_384,
        expiry_notice: timedelta = timedelta(days=7),
        clock: Clock = utcnow,
        observe: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._sessions = sessions
        self._observe = observe  # each message's outcome, "duplicate" or "failed" (metrics)
        self._catalog = catalog
        self._config = config
        self._max_context_bytes = max_context_bytes
        self._expiry_notice = expiry_notice
        self._clock = clock

    def handle(self, message: InboundMessage, lease: LeaseRequest) -> Handled:
        started = time.perf_counter()
        try:
            turn = _message_turn(message)
            handled = _retrying(partial(self._single, turn, lease), idempotent=True)
        except Exception as error:
            messagelog.message_failed(message, error, started)
            self._observe("failed")
            raise
        messagelog.message_handled(message, handled, started)
        self._observe("duplicate" if handled.duplicate else handled.outcome)
        return handled

    def handle_many(
        self, messages: Sequence[InboundMessage], lease: LeaseRequest
    ) -> list[Handled | Exception]:
        """Handle `messages` as `handle` would, in one transaction; each message's result is its
        Handled or the exception `handle` would have raised.

        Sharing the transaction shares its statements and its commit; what it must not share is
        failure. When any turn fails, the transaction is rolled back and every message is handled
        again on its own, so one bad message fails alone. Only a database that cannot be reached
        fails them all (trying each alone would wait for it once per message).
        """
        if len(messages) > MAX_BATCH:
            raise InvalidArgument(
                "too many messages", [("messages", f"at most {MAX_BATCH} in one call")]
            )
        started = time.perf_counter()
        outcomes: dict[int, Handled | Exception] = {}
        todo: dict[int, Turn] = {}
        for index, message in enumerate(messages):
            try:
                todo[index] = _message_turn(message)
            except InvalidArgument as error:
                outcomes[index] = error
        try:
            together = self._transaction(list(todo.values()), lease)
            outcomes |= dict(zip(todo, together, strict=True))
        except UNREACHABLE as error:
            if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
                outcomes |= self._one_by_one(todo, lease)
            else:
                outcomes |= dict.fromkeys(todo, error)
        except Exception:
            outcomes |= self._one_by_one(todo, lease)
        ordered = [outcomes[index] for index in range(len(messages))]
        for message, outcome in zip(messages, ordered, strict=True):
            if isinstance(outcome, Exception):
                messagelog.message_failed(message, outcome, started)
                self._observe("failed")
            else:
                messagelog.message_handled(message, outcome, started)
                self._observe("duplicate" if outcome.duplicate else outcome.outcome)
        return ordered

    def start(self, request: StartRequest, lease: LeaseRequest) -> Handled:
        """Start a conversation; NOT_FOUND / FAILED_PRECONDITION for a missing or inactive
        template."""
        started = time.perf_counter()
        try:
            turn = _start_turn(request)
            handled = _retrying(partial(self._single, turn, lease))
        except Exception as error:
            messagelog.start_failed(request, error, started)
            raise
        messagelog.conversation_started(request, handled, started)
        return handled

    def update(self, request: steering.UpdateRequest, lease: LeaseRequest) -> Handled:
        """Steer a conversation (UpdateConversation); NOT_FOUND without one, ABORTED at another
        revision, FAILED_PRECONDITION for a step it does not have or outside the window."""
        return self._steer("update", request, steering.update_turn, lease)

    def send(self, request: steering.SendRequest, lease: LeaseRequest) -> Handled:
        """Queue a message to a customer behind their earlier replies (SendMessage)."""
        return self._steer("send", request, steering.send_turn, lease)

    def hand_off(self, request: handoff.HandOffRequest) -> Handled:
        """Hand a customer to people (HandOff); NOT_FOUND without a conversation."""
        make = partial(handoff.hand_off_turn, config=self._config)
        return self._steer("handoff", request, make, LeaseRequest())

    def resume(self, request: handoff.ResumeRequest) -> Handled:
        """Give a handed-off customer back to the bot (Resume); FAILED_PRECONDITION when they
        are not handed off, ABORTED at another revision."""
        return self._steer("resume", request, handoff.resume_turn, LeaseRequest())

    def resume_idle(self, limit: int = 100) -> int:
        """Give back to the bot the handed-off customers whose handoff idled past its time;
        how many."""
        now = self._clock()
        with self._sessions() as session:
            due = handoffs.due(session, now, limit)
        resumed = 0
        for customer in due:
            started = time.perf_counter()
            turn = handoff.idle_turn(customer, self._config, now)
            try:
                handled = _retrying(partial(self._single, turn, LeaseRequest()))
            except FlowError as error:  # e.g. its template is gone: the others still resume
                messagelog.steer_failed("resume", customer[1], "idle", error, started)
                continue
            messagelog.steered("resume", customer[1], "idle", handled, started)
            resumed += handled.outcome != str(Outcome.IGNORED)
        return resumed

    def _steer(
        self,
        kind: str,
        request: steering.UpdateRequest
        | steering.SendRequest
        | handoff.HandOffRequest
        | handoff.ResumeRequest,
        make_turn: Callable[[Any], Turn],
        lease: LeaseRequest,
    ) -> Handled:
        started = time.perf_counter()
        try:
            turn = make_turn(request)
            handled = _retrying(partial(self._single, turn, lease), idempotent=turn.dedupe)
        except Exception as error:
            messagelog.steer_failed(kind, request.phone_number, request.request_id, error, started)
            raise
        messagelog.steered(kind, request.phone_number, request.request_id, handled, started)
        return handled

    def _one_by_one(
        self, todo: dict[int, Turn], lease: LeaseRequest
    ) -> dict[int, Handled | Exception]:
        outcomes: dict[int, Handled | Exception] = {}
        for index, turn in todo.items():
            try:
                outcomes[index] = _retrying(partial(self._single, turn, lease), idempotent=True)
            except Exception as error:
                outcomes[index] = error
        return outcomes

    def _single(self, turn: Turn, lease: LeaseRequest) -> Handled:
        return self._transaction([turn], lease)[0]

    def _transaction(self, todo: Sequence[Turn], lease: LeaseRequest) -> list[Handled]:
        """Run the turns in one transaction, a round at a time: lock and read the round's
        customers at once, decide each turn, write them at once."""
        handled: dict[int, Handled] = {}
        with self._sessions.begin() as session:
            for round_ in rounds(todo):
                now = self._clock()
                openings = [_opening(todo[i], now) for i in round_]
                opened = turns.lock_and_read(session.connection(), openings, lease.owner, now)
                writing: list[tuple[int, turns.Opened, Decision, turns.Closing]] = []
                for index, found in zip(round_, opened, strict=True):
                    turn = todo[index]
                    if found.prior_outcome is not None:
                        replies = outbox.by_ids(session, found.prior_outbox_ids)
                        before = handled_before(
                            turn, found, [outbox_entries.from_row(row) for row in replies]
                        )
                        if before.conversation is not None:
                            before.conversation = replace(
                                before.conversation, handoff=found.handoff
                            )
                        handled[index] = before
                        continue
                    expired_since = (
                        found.expired_at is not None
                        and now - found.expired_at < self._expiry_notice
                    )
                    decision = self._decide(session, turn, found, now, expired_since)
                    writes = closing(turn, decision, found, now, lease, self._max_context_bytes)
                    writing.append((index, found, decision, writes))
                written = turns.write(
                    session.connection(), now, [(todo[i].customer, w) for i, _, _, w in writing]
                )
                drafts: list[events.Draft] = []
                for (index, found, decision, writes), ids in zip(writing, written, strict=True):
                    turn = todo[index]
                    done = handled_now(turn, found, writes, ids, now)
                    drafts += turn_events.drafts(turn, found, decision, writes, ids)
                    more, details = handoff_writes.after(
                        session, turn, found, decision, now, self._config
                    )
                    drafts += more
                    if done.conversation is not None:
                        done.conversation = replace(done.conversation, handoff=details)
                    handled[index] = done
                events.record(session, drafts)
        return [handled[index] for index in range(len(todo))]

    def _decide(
        self,
        session: Session,
        turn: Turn,
        found: turns.Opened,
        now: datetime,
        expired_since: bool,
    ) -> Decision:
        """Run the engine; if a step needs the customer's orders, read them (one query) and run
        it again with them. What a turn another service asked for sends follows the window."""
        if isinstance(turn, SendTurn):
            return steering.business_initiated(
                turn, steering.send_decision(turn, found), found, now
            )
        if isinstance(turn, HandOffTurn):
            return handoff.hand_off_decision(turn, found, now)
        state = found.state
        text = ""
        if isinstance(turn, MessageTurn):
            paused = handoff.paused(turn, found, now, self._config)
            if paused is not None:
                return paused
            # A conversation whose template was deleted meanwhile is not in the catalog: the
            # engine then starts over as for a first message.
            catalog = self._catalog.get(session, (state.flow, state.version) if state else None)
        elif isinstance(turn, UpdateTurn):
            state = steering.steerable(turn, found, now)
            catalog = self._catalog.get(session, (state.flow, state.version))
            steering.check_target(catalog, turn, state)
        elif isinstance(turn, ResumeTurn):
            resumable = handoff.resumable(turn, found, now)
            if resumable is None:
                return Decision(Outcome.IGNORED, found.state, ())
            state = resumable
            catalog = self._catalog.get(session, (state.flow, state.version))
            text = handoff.resume_text(turn, found, self._config)
            turn = handoff.resume_target(turn, catalog, state, self._config)
            if turn.end:
                ended = Decision(Outcome.ADVANCED, None, ())
                return handoff.resumed(turn, ended, found, now, text)
            steering.check_target(catalog, turn, state)
        else:
            catalog = self._catalog.get(session)
            _check_startable(catalog, turn.template_name, turn.step)
        # A reference is unique in practice (32^6 values); if two results ever draw the same one,
        # the unique constraint fails the transaction and _retrying runs it again.
        reference = new_reference(secrets.randbelow)
        run = partial(
            self._run_engine, catalog, turn, state, now, reference, expired_since, found.language
        )
        decision = run(facts=None)
        if isinstance(decision, Needs):
            decision = run(facts=_orders(session, turn.customer, decision))
        if isinstance(decision, Needs):
            raise AssertionError("the engine needs facts only once")
        if isinstance(turn, ResumeTurn):
            return handoff.resumed(turn, decision, found, now, text)
        return steering.business_initiated(turn, decision, found, now)

    def _run_engine(
        self,
        catalog: Catalog,
        turn: Turn,
        state: State | None,
        now: datetime,
        reference: str,
        expired_since: bool,
        language: str | None,
        *,
        facts: Facts | None,
    ) -> Decision | Needs:
        to = turn.customer[1]
        if isinstance(turn, MessageTurn):
            return advance(
                catalog,
                state,
                turn.inbound,
                to=to,
                now=now,
                config=self._config,
                reference=reference,
                facts=facts,
                expired_since=expired_since,
                language=language,
            )
        if isinstance(turn, UpdateTurn | ResumeTurn):
            assert state is not None  # steering.steerable (handoff.resumable) checked it
            return enter(
                catalog,
                state,
                step=turn.step,
                flow=turn.flow,
                context=turn.context,
                to=to,
                now=now,
                config=self._config,
                reference=reference,
                facts=facts,
            )
        assert isinstance(turn, StartTurn)
        return start(
            catalog,
            turn.template_name,
            context=dict(turn.context),
            step=turn.step,
            to=to,
            now=now,
            config=self._config,
            reference=reference,
            facts=facts,
            language=language,
        )


def _message_turn(message: InboundMessage) -> MessageTurn:
    inbound = engine_input(message)
    customer = (message.phone_number_id, message.phone_number)
    return MessageTurn(customer, message.message_id, inbound, message.sent_at, content(message))


def _opening(turn: Turn, now: datetime) -> turns.Opening:
    """A turn as its round opens it; a customer's message also says when they last wrote (its
    own time: a redelivery days later must not reopen the window; never past now)."""
    inbound_at = None
    if isinstance(turn, MessageTurn):
        inbound_at = min(turn.sent_at, now) if turn.sent_at is not None else now
    return turns.Opening(turn.customer, turn.source_id if turn.dedupe else None, inbound_at)


def _start_turn(request: StartRequest) -> StartTurn:
    problems = steering.common_problems(
        request.phone_number_id, request.phone_number, request.request_id, request.message_template
    )
    if not request.template_name:
        problems.append(("template_name", "required"))
    if request.ttl is not None and not timedelta(0) < request.ttl <= MAX_TTL:
        problems.append(("ttl", f"more than 0 and at most {MAX_TTL.days} days"))
    if problems:
        raise InvalidArgument("bad start request", problems)
    return StartTurn(
        customer=(request.phone_number_id, request.phone_number),
        # Without a request id a start is never deduped: each call starts anew.
        source_id=steering.source_id("start", request.request_id),
        dedupe=bool(request.request_id),
        template_name=request.template_name,
        context=request.context,
        step=request.initial_step or INITIAL,
        ttl=request.ttl,
        message_template=request.message_template,
    )


def _check_startable(catalog: Catalog, name: str, step: str) -> None:
    template = catalog.current(name)
    if template is None:
        raise NotFound(f"template {name!r} does not exist or has no live version (only drafts)")
    if not template.is_active:
        raise FailedPrecondition(f"template {name!r} is not active")
    steering.check_step(template, step)


def _orders(session: Session, customer: Customer, needs: Needs) -> Facts:
    rows = results.for_customer(
        session,
        *customer,
        reference=needs.reference,
        templates=needs.templates,
        limit=needs.recent_limit,
    )
    return Facts(
        orders=tuple(
            OrderFact(r.reference, r.template_name, r.template_version, r.context, r.created_at)
            for r in rows
        )
    )


def _retrying(unit: Callable[[], Handled], *, idempotent: bool = False) -> Handled:
    """Run `unit` again if its result reference clashed, or, when it is idempotent (deduped by
    message id), if its database connection turned out dead (connections used moments ago are
    not pinged first; see store.db)."""
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
