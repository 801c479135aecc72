"""Translation between protobuf messages and the service layer's types (no logic beyond that)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from flowsvc.engine.calls import ERROR, OK, TIMEOUT, CallResult
from flowsvc.engine.message_templates import Button, Media, MessageTemplate, Parameter
from flowsvc.errors import InvalidArgument
from flowsvc.service.calls import ClaimedCall
from flowsvc.service.conversations import Conversation
from flowsvc.service.deliveries import Ack, AckKind
from flowsvc.service.event_delivery import Claim, ClaimRequest
from flowsvc.service.event_hub import Committed
from flowsvc.service.handling import StartRequest
from flowsvc.service.handoff import HandOffRequest, ResumeRequest
from flowsvc.service.inbound import InboundMessage
from flowsvc.service.outbox_entries import OutboxEntry
from flowsvc.service.results import Result
from flowsvc.service.steering import SendRequest, UpdateRequest
from flowsvc.service.templates import ImportAction, Imported, TemplateDefinition, TemplateVersion
from flowsvc.service.turns import Handled, LeaseRequest
from flowsvc.store.event_deliveries import Letter
from flowsvc.store.events import Filter
from flowsvc.store.models import EventDeadLetter
from menuflow.v1 import flow_pb2
from menuflow.values import integral

TEMPLATE_TYPES = {
    "button": flow_pb2.TEMPLATE_TYPE_BUTTON,
    "list": flow_pb2.TEMPLATE_TYPE_LIST,
    "text": flow_pb2.TEMPLATE_TYPE_TEXT,
}
IMPORT_ACTIONS = {
    ImportAction.CREATED: flow_pb2.IMPORT_ACTION_CREATED,
    ImportAction.UPDATED: flow_pb2.IMPORT_ACTION_UPDATED,
    ImportAction.UNCHANGED: flow_pb2.IMPORT_ACTION_UNCHANGED,
}
ACTIVE_FILTERS = {
    flow_pb2.ACTIVE_FILTER_UNSPECIFIED: None,
    flow_pb2.ACTIVE_FILTER_ACTIVE: True,
    flow_pb2.ACTIVE_FILTER_INACTIVE: False,
}


def from_struct(struct: struct_pb2.Struct, field: str) -> dict[str, Any]:
    """A Struct as JSON data; InvalidArgument naming `field` when it holds NaN or Infinity, which
    a Struct can carry and JSON cannot."""
    try:
        return integral(json_format.MessageToDict(struct))  # type: ignore[no-any-return]
    except ValueError:  # protobuf: "Fail to serialize NaN for Value.number_value"
        raise InvalidArgument(
            f"bad {field}", [(field, "NaN and Infinity are not JSON numbers")]
        ) from None


def to_struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)  # reads any mapping: no copy needed
    return struct


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def to_timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """As Timestamp.FromDatetime (a naive time read as UTC), without its time tuple: a few
    timestamps go into every response."""
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    _write_time(stamp, value)
    return stamp


def to_duration(value: timedelta | None) -> duration_pb2.Duration | None:
    if value is None:
        return None
    duration = duration_pb2.Duration()
    duration.FromTimedelta(value)
    return duration


def template_definition(
    message: flow_pb2.TemplateDefinition, *, draft: bool = False
) -> TemplateDefinition:
    return TemplateDefinition(
        name=message.name,
        trigger_keywords=tuple(message.trigger_keywords),
        menu_structure=from_struct(message.menu_structure, "template.menu_structure"),
        is_active=message.is_active if message.HasField("is_active") else None,
        draft=draft,
    )


def template(version: TemplateVersion) -> flow_pb2.Template:
    return flow_pb2.Template(
        name=version.name,
        version=version.version,
        type=TEMPLATE_TYPES.get(version.type, flow_pb2.TEMPLATE_TYPE_UNSPECIFIED),
        trigger_keywords=version.trigger_keywords,
        menu_structure=to_struct(version.menu_structure),
        is_active=version.is_active,
        create_time=to_timestamp(version.created_at),
        version_create_time=to_timestamp(version.version_created_at),
        live=version.live,
        draft=version.draft,
        live_version=version.live_version or 0,
    )


def imported(item: Imported) -> flow_pb2.ImportedTemplate:
    return flow_pb2.ImportedTemplate(
        name=item.name,
        version=item.version,
        action=IMPORT_ACTIONS[item.action],
        warnings=warnings(item.warnings),
    )


def warnings(found: Iterable[tuple[str, str]]) -> list[flow_pb2.TemplateWarning]:
    return [flow_pb2.TemplateWarning(field=field, description=text) for field, text in found]


OUTCOMES = {
    name.removeprefix("OUTCOME_").lower(): number
    for name, number in flow_pb2.Outcome.items()
    if number
}
DELIVERY_STATES = {
    "pending": flow_pb2.DELIVERY_STATE_PENDING,
    "sent": flow_pb2.DELIVERY_STATE_SENT,
    "failed": flow_pb2.DELIVERY_STATE_FAILED,
}
DELIVERY_STATUSES = {
    name.removeprefix("DELIVERY_STATUS_").lower(): number
    for name, number in flow_pb2.DeliveryStatus.items()
    if number
}
STATUS_NAMES = {number: name for name, number in DELIVERY_STATUSES.items()}


def delivery_status(name: str) -> flow_pb2.DeliveryStatus.ValueType:
    return DELIVERY_STATUSES.get(name, flow_pb2.DELIVERY_STATUS_UNSPECIFIED)


def inbound(message: flow_pb2.InboundMessage) -> InboundMessage:
    content = message.WhichOneof("content")
    return InboundMessage(
        message_id=message.message_id,
        phone_number_id=message.customer.phone_number_id,
        phone_number=message.customer.phone_number,
        contact_name=message.contact_name,
        text=message.text if content == "text" else None,
        selection_id=message.selection.id if content == "selection" else None,
        selection_title=message.selection.title if content == "selection" else "",
        unsupported_type=message.unsupported_type if content == "unsupported_type" else None,
        sent_at=message.sent_time.ToDatetime(UTC) if message.HasField("sent_time") else None,
        media=_fields(message.media) if content == "media" else None,
        location=_fields(message.location) if content == "location" else None,
        contacts=tuple(
            {"name": card.name, "phones": list(card.phones)} for card in message.contacts.cards
        )
        if content == "contacts"
        else None,
        flow_reply=_flow_reply(message.flow_reply) if content == "flow_reply" else None,
    )


def _flow_reply(reply: flow_pb2.InboundFlowReply) -> dict[str, Any]:
    """A Flow's reply: its token, its response fields (JSON numbers as they were written, where
    a Struct turned integers into doubles) and the chat text."""
    return {
        "flow_token": reply.flow_token,
        "response": from_struct(reply.response, "message.flow_reply.response"),
        "body": reply.body,
    }


def _fields(message: flow_pb2.InboundMedia | flow_pb2.InboundLocation) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def hand_off_request(request: flow_pb2.HandOffRequest) -> HandOffRequest:
    return HandOffRequest(
        phone_number_id=request.customer.phone_number_id,
        phone_number=request.customer.phone_number,
        reason=request.reason,
        queue=request.queue,
        priority=request.priority,
        until=request.until.ToDatetime(UTC) if request.HasField("until") else None,
        text=request.text,
        request_id=request.request_id,
    )


def resume_request(request: flow_pb2.ResumeRequest) -> ResumeRequest:
    return ResumeRequest(
        phone_number_id=request.customer.phone_number_id,
        phone_number=request.customer.phone_number,
        step=request.step,
        flow=request.flow,
        end=request.end,
        context=from_struct(request.context, "context"),
        text=request.text,
        expected_revision=request.expected_revision,
        request_id=request.request_id,
    )


def hand_off_response(handled: Handled) -> flow_pb2.HandOffResponse:
    return flow_pb2.HandOffResponse(
        conversation=_conversation_or_none(handled),
        # The engine's IGNORED: the customer was handed off already, and nothing changed.
        already_handed_off=handled.outcome == "ignored",
        messages=[outbox_message(entry) for entry in handled.messages],
    )


def resume_response(handled: Handled) -> flow_pb2.ResumeResponse:
    return flow_pb2.ResumeResponse(
        conversation=_conversation_or_none(handled),
        messages=[outbox_message(entry) for entry in handled.messages],
    )


def handoff(details: Any) -> flow_pb2.Handoff | None:
    if not details:
        return None

    def time(key: str) -> timestamp_pb2.Timestamp | None:
        value = details.get(key)
        return to_timestamp(datetime.fromisoformat(value)) if isinstance(value, str) else None

    return flow_pb2.Handoff(
        queue=str(details.get("queue", "")),
        reason=str(details.get("reason", "")),
        priority=int(details.get("priority", 0)),
        create_time=time("since"),
        resume_time=time("resume_at"),
    )


def lease(
    request: flow_pb2.HandleMessageRequest
    | flow_pb2.HandleMessagesRequest
    | flow_pb2.StartConversationRequest,
) -> LeaseRequest:
    return LeaseRequest(request.lease_owner, request.lease_seconds)


def start_request(request: flow_pb2.StartConversationRequest) -> StartRequest:
    return StartRequest(
        phone_number_id=request.customer.phone_number_id,
        phone_number=request.customer.phone_number,
        template_name=request.template_name,
        context=from_struct(request.context, "context"),
        request_id=request.request_id,
        initial_step=request.initial_step,
        ttl=request.ttl.ToTimedelta() if request.HasField("ttl") else None,
        message_template=_message_template(request),
    )


def update_request(request: flow_pb2.UpdateConversationRequest) -> UpdateRequest:
    return UpdateRequest(
        phone_number_id=request.customer.phone_number_id,
        phone_number=request.customer.phone_number,
        context=from_struct(request.context, "context"),
        step=request.step,
        flow=request.flow,
        expected_revision=request.expected_revision,
        send=request.send_step_messages,
        message_template=_message_template(request),
        request_id=request.request_id,
    )


def send_request(request: flow_pb2.SendMessageRequest) -> SendRequest:
    content = request.WhichOneof("content")
    return SendRequest(
        phone_number_id=request.customer.phone_number_id,
        phone_number=request.customer.phone_number,
        text=request.text if content == "text" else None,
        interactive=from_struct(request.interactive, "interactive")
        if content == "interactive"
        else None,
        message_template=_message_template(request),
        request_id=request.request_id,
        agent=request.agent,
    )


def _message_template(
    request: flow_pb2.StartConversationRequest
    | flow_pb2.UpdateConversationRequest
    | flow_pb2.SendMessageRequest,
) -> MessageTemplate | None:
    if not request.HasField("template"):
        return None
    template = request.template
    return MessageTemplate(
        name=template.name,
        language=template.language,
        header=tuple(_template_parameter(p) for p in template.header),
        body=tuple(_template_parameter(p) for p in template.body),
        buttons=tuple(
            Button(
                index=b.index,
                quick_reply_payload=b.quick_reply_payload
                if b.WhichOneof("value") == "quick_reply_payload"
                else None,
                url_text=b.url_text if b.WhichOneof("value") == "url_text" else None,
            )
            for b in template.buttons
        ),
    )


def _template_parameter(parameter: flow_pb2.TemplateParameter) -> Parameter:
    kind = parameter.WhichOneof("value")
    if kind in ("image", "video", "document"):
        media = getattr(parameter, kind)
        found = Media(kind, link=media.link, id=media.id, filename=media.filename)
        return Parameter(media=found, name=parameter.name)
    return Parameter(text=parameter.text if kind == "text" else None, name=parameter.name)


def conversation(found: Conversation) -> flow_pb2.Conversation:
    message = flow_pb2.Conversation()
    _write_conversation(message, found)
    return message


# The messages of a turn's response are written in place, field by field: a message passed to a
# constructor is copied in, and a HandleMessages response would copy each one three times.


def _write_conversation(message: flow_pb2.Conversation, found: Conversation) -> None:
    _write_customer(message.customer, found.phone_number_id, found.phone_number)
    message.flow = found.flow
    message.template_version = found.template_version
    message.current_step = found.current_step
    context = message.context
    context.SetInParent()  # set, also when empty
    context.update(found.context)
    _write_time(message.last_interaction_time, found.last_interaction)
    _write_time(message.expire_time, found.expires_at)
    _write_time(message.create_time, found.created_at)
    message.revision = found.revision
    details = handoff(found.handoff)
    if details is not None:
        message.handoff.CopyFrom(details)


def outbox_message(row: OutboxEntry) -> flow_pb2.OutboxMessage:
    message = flow_pb2.OutboxMessage()
    _write_outbox_message(message, row)
    return message


def _write_outbox_message(message: flow_pb2.OutboxMessage, row: OutboxEntry) -> None:
    message.id = row.id
    _write_customer(message.customer, row.phone_number_id, row.phone_number)
    message.body_json = row.body_json
    message.source_id = row.source_id
    message.state = DELIVERY_STATES[row.state]
    message.attempts = row.attempts
    message.wa_message_id = row.wa_message_id or ""
    message.delivery_status = delivery_status(row.delivery_status or "")
    if row.error_code is not None or row.error_title:
        error = message.error
        error.code = row.error_code or 0
        error.title = row.error_title or ""
        error.details = row.error_details or ""
    message.lease_owner = row.lease_owner or ""
    _write_time(message.lease_expire_time, row.lease_expires_at)
    _write_time(message.create_time, row.created_at)


def _write_customer(message: flow_pb2.Customer, phone_number_id: str, phone_number: str) -> None:
    message.phone_number_id = phone_number_id
    message.phone_number = phone_number


def _write_time(stamp: timestamp_pb2.Timestamp, value: datetime | None) -> None:
    """As to_timestamp, into a field of a message (left unset for None)."""
    if value is not None:
        since = value - (_NAIVE_EPOCH if value.utcoffset() is None else _EPOCH)
        stamp.seconds = since.days * 86_400 + since.seconds
        stamp.nanos = since.microseconds * 1000


def handle_response(
    handled: Handled, response: flow_pb2.HandleMessageResponse | None = None
) -> flow_pb2.HandleMessageResponse:
    """The response, written into `response` when given (a HandleMessages result's field)."""
    if response is None:
        response = flow_pb2.HandleMessageResponse()
    response.SetInParent()  # set, also when every field is its default
    response.outcome = OUTCOMES.get(handled.outcome, flow_pb2.OUTCOME_UNSPECIFIED)
    response.duplicate = handled.duplicate
    if handled.conversation:
        _write_conversation(response.conversation, handled.conversation)
    messages = response.messages
    for entry in handled.messages:
        _write_outbox_message(messages.add(), entry)
    return response


def start_response(handled: Handled) -> flow_pb2.StartConversationResponse:
    return flow_pb2.StartConversationResponse(
        conversation=_conversation_or_none(handled),
        messages=[outbox_message(entry) for entry in handled.messages],
    )


def update_response(handled: Handled) -> flow_pb2.UpdateConversationResponse:
    return flow_pb2.UpdateConversationResponse(
        conversation=_conversation_or_none(handled),
        messages=[outbox_message(entry) for entry in handled.messages],
        result_reference=handled.reference,
    )


def send_response(handled: Handled) -> flow_pb2.SendMessageResponse:
    return flow_pb2.SendMessageResponse(
        message=outbox_message(handled.messages[0]) if handled.messages else None
    )


def _conversation_or_none(handled: Handled) -> flow_pb2.Conversation | None:
    return conversation(handled.conversation) if handled.conversation else None


def result(row: Result) -> flow_pb2.Result:
    return flow_pb2.Result(
        reference=row.reference,
        template_name=row.template_name,
        template_version=row.template_version,
        customer=flow_pb2.Customer(
            phone_number_id=row.phone_number_id, phone_number=row.phone_number
        ),
        context=to_struct(row.context),
        create_time=to_timestamp(row.created_at),
    )


def ack(message: flow_pb2.OutboxAck) -> Ack:
    kind = message.WhichOneof("result")
    if kind == "sent_wa_message_id":
        return Ack(message.id, AckKind.SENT, wa_message_id=message.sent_wa_message_id)
    if kind == "failed":
        return Ack(
            message.id,
            AckKind.FAILED,
            error_code=message.failed.code,
            error_title=message.failed.title,
            error_details=message.failed.details,
        )
    if kind == "retry":
        error = message.retry.error if message.retry.HasField("error") else None
        return Ack(
            message.id,
            AckKind.RETRY,
            delay_seconds=message.retry.delay_seconds,
            error_code=error.code if error else None,
            error_title=error.title if error else "",
            error_details=error.details if error else "",
        )
    if kind == "released":
        return Ack(message.id, AckKind.RELEASED)
    raise InvalidArgument(
        "bad ack", [(f"acks[id={message.id}].result", "one of sent, failed, retry, released")]
    )


class EventCache:
    """Events as messages, each built once however many watchers it goes to (building the
    payload is what costs), the latest `size` kept."""

    def __init__(self, size: int = 20_000) -> None:
        self._size = size
        self._built: OrderedDict[int, flow_pb2.Event] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, item: Committed) -> flow_pb2.Event:
        with self._lock:
            found = self._built.get(item.id)
        if found is None:
            found = event(item)
            with self._lock:
                self._built[item.id] = found
                while len(self._built) > self._size:
                    self._built.popitem(last=False)
        return found


class ResponseCache:
    """WatchEvents responses, each built and serialized once per batch however many streams send
    it: the event hub hands every stream that follows the same filter the same list, so the 100
    streams of one filter share one response's bytes (the latest `size` batches kept, each with
    its list, so that the list's id is not reused while it is a key)."""

    def __init__(self, events: EventCache, size: int = 256) -> None:
        self._events = events
        self._size = size
        self._built: OrderedDict[int, tuple[list[Committed], bytes]] = OrderedDict()

    def get(self, batch: list[Committed]) -> bytes:
        # No lock: every stream runs on the server's one event loop.
        found = self._built.get(id(batch))
        if found is not None and found[0] is batch:
            return found[1]
        response = flow_pb2.WatchEventsResponse(
            events=[self._events.get(item) for item in batch]
        ).SerializeToString()
        self._built[id(batch)] = (batch, response)
        while len(self._built) > self._size:
            self._built.popitem(last=False)
        return response


def event(item: Committed) -> flow_pb2.Event:
    """An event with its payload in the oneof field its type names."""
    message = flow_pb2.Event(
        id=item.id,
        type=flow_pb2.EventType.Value(f"EVENT_TYPE_{item.type.upper()}"),
        customer=flow_pb2.Customer(phone_number_id=item.customer[0], phone_number=item.customer[1]),
        template_name=item.template_name,
        template_version=item.template_version,
        create_time=to_timestamp(item.created_at),
    )
    payload = getattr(message, item.type)
    payload.SetInParent()
    json_format.ParseDict(item.payload, payload, ignore_unknown_fields=True)
    return message


def event_filter(message: flow_pb2.EventFilter) -> Filter:
    return Filter(
        types=frozenset(
            flow_pb2.EventType.Name(t).removeprefix("EVENT_TYPE_").lower()
            if t in flow_pb2.EventType.values()
            else str(t)
            for t in message.types
        ),
        template_name=message.template_name,
        phone_number_id=message.phone_number_id,
        phone_number=message.phone_number,
    )


def claim_request(request: flow_pb2.ClaimEventDeliveryRequest) -> ClaimRequest:
    return ClaimRequest(
        endpoint=request.endpoint,
        owner=request.owner,
        lease_seconds=request.lease_seconds,
        max_events=request.max_events,
        wait_ms=request.wait_ms,
        wanted=event_filter(request.filter),
        from_oldest=request.start == flow_pb2.DELIVERY_START_OLDEST,
        renew_only=request.renew_only,
    )


def claim_response(
    claim: Claim, build: Callable[[Committed], flow_pb2.Event] = event
) -> flow_pb2.ClaimEventDeliveryResponse:
    return flow_pb2.ClaimEventDeliveryResponse(
        leased=claim.leased,
        holder=claim.holder,
        lease_expire_time=to_timestamp(claim.lease_expires_at),
        cursor=claim.cursor,
        events=[build(item) for item in claim.items],
        through_id=claim.through_id,
    )


def letter(message: flow_pb2.DeadLetter) -> Letter:
    return Letter(message.event_id, message.reason, message.http_status)


def dead_letter(row: EventDeadLetter) -> flow_pb2.DeadLetter:
    return flow_pb2.DeadLetter(
        event_id=row.event_id,
        reason=row.reason,
        http_status=row.http_status,
        endpoint=row.endpoint,
        create_time=to_timestamp(row.created_at),
    )


_CALL_KINDS = {
    flow_pb2.CALL_RESULT_KIND_ANSWERED: OK,
    flow_pb2.CALL_RESULT_KIND_FAILED: ERROR,
    flow_pb2.CALL_RESULT_KIND_TIMEOUT: TIMEOUT,
}


def queued_call(call: ClaimedCall) -> flow_pb2.QueuedCall:
    return flow_pb2.QueuedCall(
        id=call.id,
        customer=flow_pb2.Customer(
            phone_number_id=call.phone_number_id, phone_number=call.phone_number
        ),
        endpoint=call.endpoint,
        method=call.method,
        path=call.path,
        body_json=call.body_json,
        timeout_seconds=call.timeout_seconds,
        attempts=call.attempts,
    )


def call_result(request: flow_pb2.FinishCallRequest) -> CallResult:
    """A call's result as the engine reads it: the body parsed as JSON (not JSON: no fields)."""
    kind = _CALL_KINDS.get(request.kind)
    problems = []
    if request.call_id <= 0:
        problems.append(("call_id", "required"))
    if kind is None:
        problems.append(("kind", "ANSWERED, FAILED or TIMEOUT"))
    if problems or kind is None:
        raise InvalidArgument("bad call result", problems)
    try:
        body = json.loads(request.body) if request.body else None
    except ValueError:
        body = None
    return CallResult(kind, request.status_code, body, request.detail[:200])


def call_lease(request: flow_pb2.FinishCallRequest) -> LeaseRequest:
    return LeaseRequest(request.lease_owner, request.lease_seconds)


def finish_call_response(handled: Handled) -> flow_pb2.FinishCallResponse:
    return flow_pb2.FinishCallResponse(
        outcome=OUTCOMES.get(handled.outcome, flow_pb2.OUTCOME_UNSPECIFIED),
        duplicate=handled.duplicate,
        conversation=_conversation_or_none(handled),
        messages=[outbox_message(entry) for entry in handled.messages],
    )
