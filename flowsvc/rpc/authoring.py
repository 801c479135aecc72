"""Translation of the authoring RPCs (diff, preview, sandbox, flow stats) between protobuf and
the service."""

from __future__ import annotations

from datetime import UTC, timedelta

from flowsvc.engine import CallResult, Decision, Inbound, State, history_from_json
from flowsvc.engine.diff import Change
from flowsvc.engine.preview import PreviewStep
from flowsvc.rpc.convert import (
    OUTCOMES,
    call_result,
    from_struct,
    template,
    template_definition,
    to_duration,
    to_struct,
    to_timestamp,
)
from flowsvc.service.sandbox import SandboxTurn
from flowsvc.service.stats import FlowStats
from flowsvc.service.templates import TemplateVersion
from menuflow.v1 import flow_pb2

CHANGE_KINDS = {
    name.removeprefix("CHANGE_KIND_").lower(): number
    for name, number in flow_pb2.ChangeKind.items()
    if number
}


def diff_response(
    old: int, new: int, changes: list[Change]
) -> flow_pb2.DiffTemplateVersionsResponse:
    return flow_pb2.DiffTemplateVersionsResponse(
        from_version=old,
        to_version=new,
        changes=[
            flow_pb2.TemplateChange(
                kind=CHANGE_KINDS[change.kind],
                step=change.step,
                field=change.field,
                old_value=change.old,
                new_value=change.new,
            )
            for change in changes
        ],
    )


def preview_response(
    version: TemplateVersion, steps: list[PreviewStep]
) -> flow_pb2.PreviewTemplateResponse:
    return flow_pb2.PreviewTemplateResponse(
        template=template(version),
        steps=[
            flow_pb2.PreviewStep(
                step=step.step,
                messages=[to_struct(body) for body in step.messages],
                choices=[
                    flow_pb2.PreviewChoice(
                        id=c.id, title=c.title, description=c.description, target=c.target
                    )
                    for c in step.choices
                ],
                next_step=step.next_step,
                input=step.input,
                context_key=step.context_key,
                end_conversation=step.end_conversation,
                missing_placeholders=step.missing_placeholders,
            )
            for step in steps
        ],
    )


def sandbox_turn(request: flow_pb2.RunSandboxRequest) -> SandboxTurn:
    content = request.WhichOneof("input")
    inbound = None
    if content is not None and content != "call_result":
        inbound = Inbound(
            text=request.text if content == "text" else None,
            selection_id=request.selection.id if content == "selection" else None,
            selection_title=request.selection.title if content == "selection" else "",
            unsupported_type=request.unsupported_type if content == "unsupported_type" else None,
            contact_name=request.contact_name,
        )
    return SandboxTurn(
        template_name=request.template_name,
        version=request.version,
        definitions=[template_definition(item) for item in request.templates],
        state=_state(request.conversation) if request.HasField("conversation") else None,
        inbound=inbound,
        silence=request.silence.ToTimedelta() if request.HasField("silence") else timedelta(0),
        start_context=from_struct(request.start_context, "start_context"),
        call_result=_call_result(request.call_result) if content == "call_result" else None,
    )


def _call_result(message: flow_pb2.SandboxCallResult) -> CallResult:
    """A simulated call result, read as FinishCall reads a real one (unset kind: answered,
    unset status: 200)."""
    return call_result(
        flow_pb2.FinishCallRequest(
            call_id=1,  # a sandbox call has no id; FinishCall's check wants one
            kind=message.kind or flow_pb2.CALL_RESULT_KIND_ANSWERED,
            status_code=message.status_code or 200,
            body=message.body,
            detail="sandbox",
        )
    )


def _state(message: flow_pb2.SandboxConversation) -> State:
    return State(
        flow=message.flow,
        version=message.version,
        step=message.step,
        context=from_struct(message.context, "conversation.context"),
        history=history_from_json([[h.flow, h.version, h.step] for h in message.history]),
        expires_at=message.expire_time.ToDatetime(UTC),
        last_interaction=message.last_interaction_time.ToDatetime(UTC),
        silence_due_at=message.silence_due_time.ToDatetime(UTC)
        if message.HasField("silence_due_time")
        else None,
        reminders=message.reminders,
    )


def sandbox_response(decision: Decision) -> flow_pb2.RunSandboxResponse:
    response = flow_pb2.RunSandboxResponse(
        outcome=OUTCOMES.get(decision.outcome, flow_pb2.OUTCOME_UNSPECIFIED),
        messages=[to_struct(body) for body in decision.messages],
    )
    state = decision.state
    if state is not None:
        response.conversation.CopyFrom(
            flow_pb2.SandboxConversation(
                flow=state.flow,
                version=state.version,
                step=state.step,
                context=to_struct(dict(state.context)),
                history=[
                    flow_pb2.SandboxHistoryEntry(flow=f, version=v, step=s)
                    for f, v, s in state.history
                ],
                expire_time=to_timestamp(state.expires_at),
                last_interaction_time=to_timestamp(state.last_interaction),
                silence_due_time=to_timestamp(state.silence_due_at)
                if state.silence_due_at is not None
                else None,
                reminders=state.reminders,
            )
        )
    if decision.call is not None:
        response.call.CopyFrom(
            flow_pb2.SandboxCall(
                endpoint=decision.call.endpoint,
                method=decision.call.method,
                path=decision.call.path,
                body_json=decision.call.body_json,
                timeout_seconds=decision.call.timeout_seconds,
            )
        )
    if decision.result is not None:
        response.result.CopyFrom(to_struct(dict(decision.result.context)))
        response.result_reference = decision.result.reference
    return response


def stats_response(found: FlowStats) -> flow_pb2.GetFlowStatsResponse:
    return flow_pb2.GetFlowStatsResponse(
        name=found.name,
        version=found.version,
        start_time=to_timestamp(found.start),
        end_time=to_timestamp(found.end),
        started=found.started,
        completed=found.completed,
        expired=found.total("expired"),
        cancelled=found.total("cancelled"),
        ended=found.total("ended"),
        handed_off=found.total("handed_off"),
        steps=[
            flow_pb2.StepStats(
                step=step.step,
                entered=step.entered,
                exits=[
                    flow_pb2.StepExit(next_step=target, count=count)
                    for target, count in sorted(step.exits.items(), key=lambda e: (-e[1], e[0]))
                ],
                expired=step.expired,
                cancelled=step.cancelled,
                ended=step.ended,
                handed_off=step.handed_off,
                completed=step.completed,
                stopped=step.stopped,
                median_time=to_duration(step.median_time),
            )
            for step in found.steps
        ],
        oldest_event_time=to_timestamp(found.oldest_event),
    )
