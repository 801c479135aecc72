"""Sandbox conversations: one turn of the real engine against any template version (drafts and
unsaved templates included), with nothing written; the caller keeps the state between turns."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.engine import (
    CallResult,
    Catalog,
    Decision,
    EngineConfig,
    Facts,
    Inbound,
    Needs,
    Outcome,
    State,
    Template,
    advance,
    continue_call,
    load_template,
    new_reference,
    silence,
    start,
)
from flowsvc.errors import FailedPrecondition, InvalidArgument, NotFound
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.templates import TemplateDefinition, check_set
from flowsvc.store import templates

SANDBOX_RECIPIENT = "sandbox"
UNSAVED_VERSION = 0
MAX_TIMERS = 50  # timers one sandbox silence fires at most (a timeout may lead to a step with one)


@dataclass(frozen=True)
class SandboxTurn:
    """One turn: which template to try ("": the live ones only), the state so far (None: no
    conversation yet), the input (None with no state: start the template) or the result of the
    call the conversation waits for (a sandbox runs no call: the caller says what it gave), and
    the silence before it."""

    template_name: str
    version: int = 0
    definitions: Sequence[TemplateDefinition] = ()
    state: State | None = None
    inbound: Inbound | None = None
    silence: timedelta = timedelta(0)
    start_context: Mapping[str, Any] = field(default_factory=dict)
    call_result: CallResult | None = None


class Sandbox:
    """Runs sandbox turns; each reads templates in one read-only session and writes nothing."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        catalog: TemplateCatalog,
        config: EngineConfig,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._sessions = sessions
        self._catalog = catalog
        self._config = config
        self._clock = clock

    def run(self, turn: SandboxTurn) -> Decision:
        check(turn)
        with self._sessions() as session:
            catalog = self._catalog_for(session, turn)
        return decide(catalog, turn, self._clock(), self._config)

    def _catalog_for(self, session: Session, turn: SandboxTurn) -> Catalog:
        """The live catalog, with the template tried (and any unsaved ones) standing in for the
        live versions, plus the conversation's own version."""
        pinned = (turn.state.flow, turn.state.version) if turn.state is not None else None
        if pinned is not None and pinned[1] == UNSAVED_VERSION:
            pinned = None
        live = self._catalog.get(session, pinned)
        tried: list[Template] = []
        if turn.definitions:
            names = [d.name for d in turn.definitions]
            if len(set(names)) != len(names):
                raise InvalidArgument("bad sandbox turn", [("templates", "duplicate names")])
            check_set(turn.definitions, templates.names(session))
            tried += [
                load_template(
                    d.name,
                    UNSAVED_VERSION,
                    d.menu_structure,
                    trigger_keywords=d.trigger_keywords,
                    is_active=d.is_active is not False,
                )
                for d in turn.definitions
            ]
        if turn.template_name and turn.template_name not in {t.name for t in tried}:
            tried.append(self._stored(session, turn.template_name, turn.version))
        return Catalog(
            templates={**live.templates, **{(t.name, t.version): t for t in tried}},
            latest={**live.latest, **{t.name: t.version for t in tried}},
        )

    def _stored(self, session: Session, name: str, version: int) -> Template:
        head = templates.head(session, name)
        if head is None:
            raise NotFound(f"template {name!r} does not exist")
        row = templates.version(session, head, version or head.version)
        if row is None:
            raise NotFound(f"template {name!r} has no version {version}")
        return load_template(
            row.template_name,
            row.version,
            row.menu_structure,
            trigger_keywords=row.trigger_keywords,
            is_active=row.is_active,
        )


class OfflineSandbox:
    """Sandbox turns against template files alone, without flowsvc or a database (`menuflow
    test --offline`): the files are validated as a set and may target only each other."""

    def __init__(
        self,
        definitions: Sequence[TemplateDefinition],
        config: EngineConfig,
        *,
        clock: Clock = utcnow,
    ) -> None:
        check_set(definitions, ())
        self._catalog = Catalog.build(
            load_template(
                d.name,
                UNSAVED_VERSION,
                d.menu_structure,
                trigger_keywords=d.trigger_keywords,
                is_active=d.is_active is not False,
            )
            for d in definitions
        )
        self._config = config
        self._clock = clock

    def run(self, turn: SandboxTurn) -> Decision:
        check(turn)
        if turn.template_name and turn.template_name not in self._catalog.latest:
            raise NotFound(f"template {turn.template_name!r} is not among the files")
        return decide(self._catalog, turn, self._clock(), self._config)


def check(turn: SandboxTurn) -> None:
    """INVALID_ARGUMENT for a turn that cannot be run."""
    if not turn.template_name and turn.state is None and turn.inbound is None:
        raise InvalidArgument(
            "bad sandbox turn", [("template_name", "required to start a conversation")]
        )
    if turn.silence < timedelta(0):
        raise InvalidArgument("bad sandbox turn", [("silence", "must not be negative")])
    if turn.call_result is not None and (turn.state is None or turn.inbound is not None):
        raise InvalidArgument(
            "bad sandbox turn", [("call_result", "only for a conversation waiting for a call")]
        )
    if turn.call_result is not None:
        return
    if turn.state is not None and turn.inbound is None and not turn.silence:
        raise InvalidArgument(
            "bad sandbox turn",
            [("input", "required while a conversation runs (or a silence, for its timers)")],
        )


def decide(catalog: Catalog, turn: SandboxTurn, now: datetime, config: EngineConfig) -> Decision:
    """Run the engine for one turn: start the tried template, or answer the input. Sandbox time
    runs from the conversation's last turn (never backwards) plus the turn's silence."""
    if turn.state is not None:
        now = max(now, turn.state.last_interaction)
    now += turn.silence
    # Never stored, so it need not be unique; it reads like a real one in {order_id}.
    reference = new_reference(secrets.randbelow)
    if turn.state is not None:
        timed = _timers(catalog, turn.state, now, config, reference)
        if turn.call_result is not None:
            # The timers ran first, as the customer's silence came first: a timer that moved the
            # conversation on leaves it waiting for no call (the result then finds none).
            after = _call_result(catalog, timed.state, turn.call_result, now, config, reference)
            return replace(
                after,
                messages=timed.messages + after.messages,
                result=after.result or timed.result,
            )
        if turn.inbound is None:
            return timed
        if timed.outcome != Outcome.IGNORED:
            after = _answer(catalog, replace(turn, state=timed.state), now, config, reference)
            return replace(
                after,
                messages=timed.messages + after.messages,
                result=after.result or timed.result,
            )
    return _answer(catalog, turn, now, config, reference)


def _timers(
    catalog: Catalog, state: State, now: datetime, config: EngineConfig, reference: str
) -> Decision:
    """The step timers that come due by `now`, each fired at its due time, as flowsvc's sweep
    would: their messages in order, the last one's outcome (IGNORED: none was due)."""
    decided = Decision(Outcome.IGNORED, state, ())
    messages: tuple[dict[str, Any], ...] = ()
    current: State | None = state
    for _ in range(MAX_TIMERS):
        if current is None or current.silence_due_at is None or current.silence_due_at > now:
            break
        fired = silence(
            catalog,
            current,
            to=SANDBOX_RECIPIENT,
            now=current.silence_due_at,
            config=config,
            reference=reference,
            facts=Facts(),
        )
        if isinstance(fired, Needs):
            raise AssertionError("the engine needs no facts once given them")
        if fired.outcome == Outcome.IGNORED:
            break
        messages += fired.messages
        decided = replace(fired, messages=messages, result=fired.result or decided.result)
        current = fired.state
    return decided


def _call_result(
    catalog: Catalog,
    state: State | None,
    result: CallResult,
    now: datetime,
    config: EngineConfig,
    reference: str,
) -> Decision:
    """The result of the call the conversation waits for, as FinishCall continues it;
    INVALID_ARGUMENT when its step makes no call (a test script out of step says so at once,
    where flowsvc would ignore a result no conversation waits for)."""
    template = catalog.get(state.flow, state.version) if state is not None else None
    if state is None or template is None or template.step(state.step).call is None:
        where = f"step {state.step!r}" if state is not None else "no conversation"
        raise InvalidArgument(
            "bad sandbox turn", [("call_result", f"the conversation waits for no call ({where})")]
        )
    decided = continue_call(
        catalog,
        state,
        result,
        step=state.step,
        to=SANDBOX_RECIPIENT,
        now=now,
        config=config,
        reference=reference,
        facts=Facts(),
    )
    if isinstance(decided, Needs):
        raise AssertionError("the engine needs no facts once given them")
    return decided


def _answer(
    catalog: Catalog, turn: SandboxTurn, now: datetime, config: EngineConfig, reference: str
) -> Decision:
    """The turn's input (or the template's start) as the engine answers it."""
    if turn.inbound is None:
        template = catalog.current(turn.template_name)
        assert template is not None  # the caller's catalog holds it
        if not template.is_active:
            raise FailedPrecondition(f"template {turn.template_name!r} is not active")
        decided = start(
            catalog,
            turn.template_name,
            context=dict(turn.start_context),
            to=SANDBOX_RECIPIENT,
            now=now,
            config=config,
            reference=reference,
            facts=Facts(),
        )
    else:
        decided = advance(
            catalog,
            turn.state,
            turn.inbound,
            to=SANDBOX_RECIPIENT,
            now=now,
            config=config,
            reference=reference,
            facts=Facts(),  # a sandbox customer has no stored orders
        )
    if isinstance(decided, Needs):
        raise AssertionError("the engine needs no facts once given them")
    return decided
