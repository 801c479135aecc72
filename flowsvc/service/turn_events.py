"""What a turn tells the event log: the conversation it closed or started, the step it entered,
the flow it completed, the message no flow handled, the replies it queued. Pure: the turn, what it
read and what it writes in, drafts out (store.events writes them with the turn's commit)."""

from __future__ import annotations

from dataclasses import replace

from flowsvc.engine import CallRequest, Decision, Outcome, State
from flowsvc.engine.calls import ERROR, OK, TIMEOUT, CallSpec, failure
from flowsvc.service.turns import (
    CallResultTurn,
    MessageTurn,
    ResumeTurn,
    SendTurn,
    SilenceTurn,
    StartTurn,
    Turn,
    UpdateTurn,
)
from flowsvc.store import turns
from flowsvc.store.customers import Customer
from flowsvc.store.events import Draft

# Outcomes of a customer's message that no flow took up.
_UNHANDLED = frozenset({Outcome.IGNORED, Outcome.UNSUPPORTED})
# Outcomes that begin a conversation (replacing any the customer had).
_BEGINNINGS = frozenset({Outcome.STARTED, Outcome.RESTARTED, Outcome.EXPIRED})


def drafts(
    turn: Turn,
    opened: turns.Opened,
    decision: Decision,
    written: turns.Closing,
    outbox_ids: list[int],
    first_queued: int = 0,
) -> list[Draft]:
    """The events of one turn, in the order they happened. With `first_queued`, the outbox ids
    are not known yet: the turn's replies are rows first_queued, first_queued + 1, ... of the
    statement that writes them, which fills in their ids (store.turns.write)."""
    customer = turn.customer
    before = opened.state
    after = before if written.keep else decision.state
    outcome = decision.outcome
    found: list[Draft] = []

    def of(state: State | None, type_: str, **payload: object) -> Draft:
        name, version = (state.flow, state.version) if state is not None else ("", 0)
        return Draft(type_, customer, name, version, dict(payload))

    fresh = after is not None and (before is None or turn.fresh or outcome in _BEGINNINGS)
    if isinstance(turn, SendTurn):
        fresh = False
    elif before is not None and not written.keep and (after is None or fresh):
        if outcome == Outcome.EXPIRED:
            found.append(of(before, "conversation_expired", step=before.step, reason="expired"))
        elif outcome == Outcome.CANCELLED:
            found.append(of(before, "conversation_cancelled", step=before.step, reason="cancel"))
        elif not (decision.result is not None and after is None):
            found.append(of(before, "conversation_ended", step=before.step, reason=_why(turn)))
    if fresh and after is not None:
        found.append(
            of(
                after,
                "conversation_started",
                step=after.step,
                business_initiated=isinstance(turn, StartTurn),
            )
        )
    if isinstance(turn, UpdateTurn):
        found.append(
            of(
                after or before,
                "conversation_updated",
                revision=written.revision,
                step=after.step if after is not None else "",
                context_keys=sorted(turn.context),
            )
        )
    moved = after is not None and (
        fresh or before is None or (after.flow, after.step) != (before.flow, before.step)
    )
    if moved and after is not None and not written.keep:
        # Coming from another template's step: which one (GetFlowStats counts it as that
        # template's exit, not as a move within this one).
        switched = (
            {"previous_template": before.flow, "previous_version": before.version}
            if before is not None and not fresh and before.flow != after.flow
            else {}
        )
        found.append(
            of(
                after,
                "step_entered",
                step=after.step,
                previous_step="" if fresh or before is None else before.step,
                input=_input(turn),
                source_id=turn.source_id,
                **switched,
            )
        )
    result = decision.result
    if result is not None:
        found.append(
            Draft(
                "flow_completed",
                customer,
                result.template,
                result.version,
                {
                    "reference": result.reference,
                    "result": dict(result.context),
                    "step": before.step if before is not None else "",
                },
            )
        )
    if isinstance(turn, MessageTurn) and (
        outcome in _UNHANDLED or (before is None and after is None and result is None)
    ):
        found.append(
            of(
                before,
                "inbound_unhandled",
                message_id=turn.message_id,
                outcome=f"OUTCOME_{outcome.name}",
            )
        )
    agent = {"agent": turn.agent} if isinstance(turn, SendTurn) and turn.agent else {}
    if first_queued:
        outbox_ids = [0] * len(written.bodies)
    for n, (id_, body) in enumerate(zip(outbox_ids, decision.messages, strict=False)):
        queued = of(
            after or before,
            "message_queued",
            outbox_id=id_,
            source_id=turn.source_id,
            message_type=str(body.get("type", "")),
            **agent,
        )
        found.append(replace(queued, queued=first_queued + n) if first_queued else queued)
    return found


def timer_fired(
    turn: SilenceTurn, opened: turns.Opened, decision: Decision, window_closed: bool
) -> Draft:
    """A step's timer fired: in which step, what it did, when it was due."""
    before = opened.state
    after = decision.state
    name, version = (before.flow, before.version) if before is not None else ("", 0)
    if decision.outcome == Outcome.REMINDED:
        action = "remind"
    elif after is None:
        action = "end"
    else:
        action = "go"
    moved = (
        after is not None
        and before is not None
        and (after.flow, after.step)
        != (
            before.flow,
            before.step,
        )
    )
    return Draft(
        "timer_fired",
        turn.customer,
        name,
        version,
        {
            "step": before.step if before is not None else "",
            "action": action,
            "reminders": after.reminders if after is not None and action == "remind" else 0,
            "due_time": turn.due.isoformat(),
            "next_step": after.step if moved and after is not None else "",
            "window_closed": window_closed,
            "source_id": turn.source_id,
        },
    )


def _why(turn: Turn) -> str:
    if isinstance(turn, SilenceTurn):
        return "timeout"
    if isinstance(turn, StartTurn):
        return "replaced by StartConversation"
    if isinstance(turn, UpdateTurn):
        return "UpdateConversation"
    if isinstance(turn, ResumeTurn):
        return "Resume"
    return "ended by the flow"


def _input(turn: Turn) -> str:
    if isinstance(turn, MessageTurn):
        inbound = turn.inbound
        return inbound.selection_id or inbound.text or ""
    return ""


def call_queued(customer: Customer, state: State, call_id: int, request: CallRequest) -> Draft:
    """A call step queued its call (written with the turn that entered the step)."""
    return Draft(
        "call_queued",
        customer,
        state.flow,
        state.version,
        {"call_id": call_id, "endpoint": request.endpoint, "step": request.step},
    )


def call_finished(turn: CallResultTurn, opened: turns.Opened, spec: CallSpec | None) -> Draft:
    """A call's result moved its conversation on: completed, or failed and why."""
    before = opened.state
    name, version = (before.flow, before.version) if before is not None else ("", 0)
    result = turn.result
    why = failure(spec, result) if spec is not None else result.detail
    kind = {OK: "answered", ERROR: "failed", TIMEOUT: "timeout"}.get(result.kind, result.kind)
    return Draft(
        "call_failed" if why else "call_completed",
        turn.customer,
        name,
        version,
        {
            "call_id": turn.call_id,
            "endpoint": spec.endpoint if spec is not None else "",
            "step": turn.step,
            "kind": kind,
            "status_code": result.status,
            "detail": why,
        },
    )
