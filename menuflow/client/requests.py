"""FlowService requests from Python values, shared by the sync and the asyncio client."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, field_mask_pb2, json_format, struct_pb2
from google.protobuf.message import Message

from menuflow.v1 import flow_pb2
from menuflow.values import integral

ACTIVE = {
    None: flow_pb2.ACTIVE_FILTER_UNSPECIFIED,
    True: flow_pb2.ACTIVE_FILTER_ACTIVE,
    False: flow_pb2.ACTIVE_FILTER_INACTIVE,
}


def struct(values: Mapping[str, Any] | None) -> struct_pb2.Struct:
    found = struct_pb2.Struct()
    found.update(dict(values or {}))
    return found


def to_dict(message: Message) -> dict[str, Any]:
    """A response (or any message of it) as JSON-ready values, with the .proto's field names and
    a context's integral numbers as ints."""
    return integral(json_format.MessageToDict(message, preserving_proto_field_name=True))  # type: ignore[no-any-return]


def customer(business: str, phone_number: str) -> flow_pb2.Customer:
    return flow_pb2.Customer(phone_number_id=business, phone_number=phone_number)


def request_id(given: str | None) -> str:
    """The caller's idempotency key, or a fresh one (the same for every retry of the call)."""
    return given or uuid.uuid4().hex


def template_definition(definition: Mapping[str, Any]) -> flow_pb2.TemplateDefinition:
    """A template file's content ({name, trigger_keywords, is_active, menu_structure})."""
    found = flow_pb2.TemplateDefinition(
        name=str(definition.get("name", "")),
        trigger_keywords=[str(k) for k in definition.get("trigger_keywords", [])],
        menu_structure=struct(definition.get("menu_structure")),
    )
    if "is_active" in definition:
        found.is_active = bool(definition["is_active"])
    return found


def message_template(
    name: str,
    language: str,
    *,
    body: Iterable[str] | Mapping[str, str] = (),
    header: str | None = None,
    quick_replies: Mapping[int, str] | None = None,
    url_texts: Mapping[int, str] | None = None,
) -> flow_pb2.MessageTemplate:
    """A Meta message template with its values: body parameters in order (or by name, as a
    mapping), a text header's parameter, quick reply payloads and URL texts by button index."""
    if isinstance(body, Mapping):
        parameters = [flow_pb2.TemplateParameter(name=k, text=v) for k, v in body.items()]
    else:
        parameters = [flow_pb2.TemplateParameter(text=text) for text in body]
    template = flow_pb2.MessageTemplate(name=name, language=language, body=parameters)
    if header is not None:
        template.header.append(flow_pb2.TemplateParameter(text=header))
    for index, payload in sorted((quick_replies or {}).items()):
        template.buttons.append(flow_pb2.TemplateButton(index=index, quick_reply_payload=payload))
    for index, text in sorted((url_texts or {}).items()):
        template.buttons.append(flow_pb2.TemplateButton(index=index, url_text=text))
    return template


def start(
    who: flow_pb2.Customer,
    template_name: str,
    *,
    context: Mapping[str, Any] | None,
    initial_step: str,
    ttl: timedelta | None,
    template: flow_pb2.MessageTemplate | None,
    request_id_: str | None,
) -> flow_pb2.StartConversationRequest:
    request = flow_pb2.StartConversationRequest(
        customer=who,
        template_name=template_name,
        context=struct(context),
        initial_step=initial_step,
        request_id=request_id(request_id_),
        template=template,
    )
    if ttl is not None:
        request.ttl.CopyFrom(duration_pb2.Duration(seconds=int(ttl.total_seconds())))
    return request


def update(
    who: flow_pb2.Customer,
    *,
    context: Mapping[str, Any] | None,
    step: str,
    flow: str,
    expected_revision: int,
    send: bool,
    template: flow_pb2.MessageTemplate | None,
    request_id_: str | None,
) -> flow_pb2.UpdateConversationRequest:
    return flow_pb2.UpdateConversationRequest(
        customer=who,
        context=struct(context),
        step=step,
        flow=flow,
        expected_revision=expected_revision,
        send_step_messages=send,
        template=template,
        request_id=request_id(request_id_),
    )


def send(
    who: flow_pb2.Customer,
    *,
    text: str | None,
    interactive: Mapping[str, Any] | None,
    template: flow_pb2.MessageTemplate | None,
    request_id_: str | None,
    agent: str = "",
) -> flow_pb2.SendMessageRequest:
    request = flow_pb2.SendMessageRequest(
        customer=who, template=template, request_id=request_id(request_id_), agent=agent
    )
    if text is not None:
        request.text = text
    if interactive is not None:
        request.interactive.CopyFrom(struct(interactive))
    return request


def hand_off(
    who: flow_pb2.Customer,
    *,
    reason: str,
    queue: str,
    priority: int,
    until: datetime | None,
    text: str,
    request_id_: str | None,
) -> flow_pb2.HandOffRequest:
    request = flow_pb2.HandOffRequest(
        customer=who,
        reason=reason,
        queue=queue,
        priority=priority,
        text=text,
        request_id=request_id(request_id_),
    )
    if until is not None:
        request.until.FromDatetime(until)
    return request


def resume(
    who: flow_pb2.Customer,
    *,
    step: str,
    flow: str,
    end: bool,
    context: Mapping[str, Any] | None,
    text: str,
    expected_revision: int,
    request_id_: str | None,
) -> flow_pb2.ResumeRequest:
    return flow_pb2.ResumeRequest(
        customer=who,
        step=step,
        flow=flow,
        end=end,
        context=struct(context),
        text=text,
        expected_revision=expected_revision,
        request_id=request_id(request_id_),
    )


def update_template(
    definition: Mapping[str, Any], fields: Iterable[str], expected_version: int, draft: bool
) -> flow_pb2.UpdateTemplateRequest:
    return flow_pb2.UpdateTemplateRequest(
        template=template_definition(definition),
        update_mask=field_mask_pb2.FieldMask(paths=list(fields)),
        expected_version=expected_version,
        draft=draft,
    )


def event_filter(
    types: Iterable[str | int], template_name: str, business: str, phone_number: str
) -> flow_pb2.EventFilter:
    """Types as EventType values or names, with or without the prefix ("flow_completed")."""
    return flow_pb2.EventFilter(
        types=[event_type(t) for t in types],
        template_name=template_name,
        phone_number_id=business,
        phone_number=phone_number,
    )


def event_type(given: str | int) -> flow_pb2.EventType.ValueType:
    if isinstance(given, int):
        return flow_pb2.EventType.ValueType(given)
    name = given.upper()
    return flow_pb2.EventType.Value(
        name if name.startswith("EVENT_TYPE_") else f"EVENT_TYPE_{name}"
    )


def flow_stats(
    name: str, version: int, start: datetime | None, end: datetime | None
) -> flow_pb2.GetFlowStatsRequest:
    request = flow_pb2.GetFlowStatsRequest(name=name, version=version)
    if start is not None:
        request.start_time.FromDatetime(start)
    if end is not None:
        request.end_time.FromDatetime(end)
    return request
