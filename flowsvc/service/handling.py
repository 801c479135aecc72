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
     (store.events): on PostgreSQL the last round's write statement carries them, unless a
     handoff write follows it.
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
    CallResult,
    Catalog,
    Decision,
    EngineConfig,
    Facts,
    Needs,
    OrderFact,
    Outcome,
    State,
    advance,
    continue_call,
    enter,
    new_reference,
    silence,
    start,
)
from flowsvc.engine.calls import CallSpec
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
    window,
)
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.inbound import InboundMessage, content, engine_input
from flowsvc.service.turns import (
    CallResultTurn,
    Handled,
    HandOffTurn,
    LeaseRequest,
    MessageTurn,
    ResumeTurn,
    SendTurn,
    SilenceTurn,
    StartTurn,
    Turn,
    UpdateTurn,
    closing,
    handled_before,
    handled_now,
    rounds,
)
from flowsvc.store import calls, events, handoffs, outbox, results, timers, turns
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

    def fire_timers(self, limit: int = 100) -> int:
        """Fire the step timers that are due (the customers said nothing for a step's
        `timeout`), each as a turn of its own under the customer's lock; how many fired.

        Every replica's sweep may see the same due timers: the turn claims the customer first
        (PostgreSQL: SKIP LOCKED, so a timer another replica is firing, or whose customer is
        writing now, is left to that turn) and fires only if the conversation still holds that
        due time; its dedupe record (the timer's id) answers a second try with the first's."""
        now = self._clock()
        with self._sessions() as session:
            found = timers.due(session, now, limit)
        fired = 0
        for timer in found:
            started = time.perf_counter()
            turn = SilenceTurn(timer.customer, timer.conversation_id, timer.due)
            try:
                handled = _retrying(partial(self._single, turn, LeaseRequest()), idempotent=True)
            except FlowError as error:  # e.g. its template is gone: the others still fire
                messagelog.steer_failed("timer", timer.customer[1], turn.source_id, error, started)
                continue
            if handled.duplicate or handled.outcome in ("", str(Outcome.IGNORED)):
                continue
            messagelog.steered("timer", timer.customer[1], turn.source_id, handled, started)
            fired += 1
        return fired

    def finish_call(self, call_id: int, result: CallResult, lease: LeaseRequest) -> Handled:
        """A call's result (FinishCall): the conversation waiting for it moves on, once; NOT_FOUND
        for a call that was never queued."""
        started = time.perf_counter()
        with self._sessions() as session:
            row = calls.get(session, call_id)
            customer = (row.phone_number_id, row.phone_number) if row is not None else None
        if customer is None:
            raise NotFound(f"no call {call_id}")
        turn = CallResultTurn(customer, call_id, result)
        try:
            handled = _retrying(partial(self._single, turn, lease), idempotent=True)
        except Exception as error:
            messagelog.steer_failed("call", customer[1], turn.source_id, error, started)
            raise
        messagelog.steered("call", customer[1], turn.source_id, handled, started)
        return handled

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
        timed: dict[int, bool] = {}  # a timer turn's: what it would send was not sent
        # The last round's results when its write carried the events: built after COMMIT, since
        # the event counter's row stays locked from that write until then (store.events).
        after_commit: list[tuple[int, turns.Opened, turns.Closing, list[int], datetime]] = []
        postgres = self._sessions.kw["bind"].dialect.name == "postgresql"
        with self._sessions.begin() as session:
            all_rounds = rounds(todo)
            for number, round_ in enumerate(all_rounds, start=1):
                now = self._clock()
                round_ = self._claimed(session, todo, round_, handled)
                if not round_:
                    continue
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
                    closed_window = False
                    if isinstance(turn, SilenceTurn) and decision.messages:
                        # What a timer sends is free-form: outside the window it is not sent
                        # (it could not be delivered); the move still happens.
                        closed_window = not window.is_open(found.last_inbound_at, now)
                        if closed_window:
                            decision = replace(decision, messages=())
                    timed[index] = closed_window
                    writes = closing(turn, decision, found, now, lease, self._max_context_bytes)
                    writing.append((index, found, decision, writes))
                closings = [(todo[i].customer, w) for i, _, _, w in writing]
                # The transaction's last write, if nothing of a handoff follows it, takes the
                # events of the whole transaction with it (one round trip fewer; store.events
                # needs them last, and they are: COMMIT comes next).
                if (
                    postgres
                    and number == len(all_rounds)
                    and writing
                    and all(handoff_writes.quiet(todo[i], o, d) for i, o, d, _ in writing)
                ):
                    drafts = events.take(session)
                    first = 1
                    for index, found, decision, writes in writing:
                        drafts += self._drafts(
                            session,
                            todo[index],
                            found,
                            decision,
                            writes,
                            [],
                            now,
                            timed[index],
                            first,
                        )
                        first += len(writes.bodies)
                    written = turns.write(session.connection(), now, closings, drafts)
                    events.written(session, written.last_event_id)
                    after_commit = [
                        (index, found, writes, ids, now)
                        for (index, found, _, writes), ids in zip(writing, written.ids, strict=True)
                    ]
                    continue
                written = turns.write(session.connection(), now, closings)
                drafts = []
                for (index, found, decision, writes), ids in zip(writing, written.ids, strict=True):
                    turn = todo[index]
                    done = handled_now(turn, found, writes, ids, now)
                    drafts += self._drafts(
                        session, turn, found, decision, writes, ids, now, timed[index], 0
                    )
                    more, details = handoff_writes.after(
                        session, turn, found, decision, now, self._config
                    )
                    drafts += more
                    if done.conversation is not None:
                        done.conversation = replace(done.conversation, handoff=details)
                    handled[index] = done
                events.record(session, drafts)
        for index, found, writes, ids, at in after_commit:
            handled[index] = handled_now(todo[index], found, writes, ids, at)
        return [handled[index] for index in range(len(todo))]

    def _drafts(
        self,
        session: Session,
        turn: Turn,
        found: turns.Opened,
        decision: Decision,
        writes: turns.Closing,
        ids: list[int],
        now: datetime,
        window_closed: bool,
        first_queued: int,
    ) -> list[events.Draft]:
        """The events of one turn: a timer's firing, what the turn did, and its call's."""
        drafts: list[events.Draft] = []
        if isinstance(turn, SilenceTurn) and decision.outcome != Outcome.IGNORED:
            drafts.append(turn_events.timer_fired(turn, found, decision, window_closed))
        drafts += turn_events.drafts(turn, found, decision, writes, ids, first_queued=first_queued)
        return drafts + self._calls(session, turn, found, decision, now)

    def _claimed(
        self, session: Session, todo: Sequence[Turn], round_: list[int], handled: dict[int, Handled]
    ) -> list[int]:
        """The round's turns less the timers whose customer another transaction holds (answered
        as not fired: that transaction's turn decides; the timer is seen again if still due)."""
        kept = []
        for index in round_:
            turn = todo[index]
            if isinstance(turn, SilenceTurn) and not timers.claim(
                session.connection(), turn.customer
            ):
                handled[index] = Handled(str(Outcome.IGNORED), False, None)
                continue
            kept.append(index)
        return kept

    def _calls(
        self,
        session: Session,
        turn: Turn,
        found: turns.Opened,
        decision: Decision,
        now: datetime,
    ) -> list[events.Draft]:
        """Queue the call of the step the decision entered (outside this transaction the gateway
        runs it), and say what happened to a call whose result this turn handled."""
        drafts: list[events.Draft] = []
        if isinstance(turn, CallResultTurn) and decision.outcome != Outcome.IGNORED:
            row = calls.get(session, turn.call_id)
            turn = replace(turn, step=row.step if row is not None else "")
            drafts.append(
                turn_events.call_finished(
                    turn, found, self._catalog_step(session, turn, found.state)
                )
            )
        state = decision.state
        if decision.call is not None and state is not None:
            call_id = calls.queue(session, turn.customer, state.flow, decision.call, now)
            drafts.append(turn_events.call_queued(turn.customer, state, call_id, decision.call))
        return drafts

    def _catalog_step(
        self, session: Session, turn: CallResultTurn, before: State | None
    ) -> CallSpec | None:
        """The call as the step that made it writes it (the conversation's template version)."""
        if before is None:
            return None
        key = (before.flow, before.version)
        template = self._catalog.get(session, key).get(*key)
        return template.step(turn.step).call if template is not None else None

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
        if isinstance(turn, SilenceTurn):
            return self._silence(session, turn, found, now)
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
        elif isinstance(turn, CallResultTurn):
            row = calls.get(session, turn.call_id)  # its customer is locked: no race
            waiting = row is not None and row.state == calls.PENDING
            if row is not None and waiting:
                calls.finish(session, row, now)  # whatever it does now, it is never run again
            # Ignored: a call no longer waited for, a conversation that ended, expired, went
            # to another flow, or is with people (they say where the bot takes over).
            gone = state is None or state.expires_at <= now or found.handoff is not None
            if not waiting or gone or row is None or state is None or row.flow != state.flow:
                return Decision(Outcome.IGNORED, state, ())
            turn = replace(turn, step=row.step)
            catalog = self._catalog.get(session, (state.flow, state.version))
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

    def _silence(
        self, session: Session, turn: SilenceTurn, found: turns.Opened, now: datetime
    ) -> Decision:
        """A due timer: nothing when the customer wrote meanwhile (the timer moved or went),
        is handed off, or has no conversation; else the engine's silence turn."""
        state = found.state
        if state is None or found.handoff is not None or state.silence_due_at != turn.due:
            return Decision(Outcome.IGNORED, state, ())
        catalog = self._catalog.get(session, (state.flow, state.version))
        reference = new_reference(secrets.randbelow)
        run = partial(
            silence,
            catalog,
            state,
            to=turn.customer[1],
            now=now,
            config=self._config,
            reference=reference,
        )
        decision = run(facts=None)
        if isinstance(decision, Needs):
            decision = run(facts=_orders(session, turn.customer, decision))
        if isinstance(decision, Needs):
            raise AssertionError("the engine needs facts only once")
        return decision

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
        if isinstance(turn, CallResultTurn):
            return continue_call(
                catalog,
                state,
                turn.result,
                step=turn.step,
                to=to,
                now=now,
                config=self._config,
                reference=reference,
                facts=facts,
            )
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
