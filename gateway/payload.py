"""Meta webhook JSON to FlowService requests; tolerant: it skips and counts what it can't read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from gateway import tracker
from gateway.json_fields import as_dict, as_list, as_str
from gateway.meta_errors import meta_error
from menuflow.v1 import flow_pb2

_STATUSES = {
    "sent": flow_pb2.DELIVERY_STATUS_SENT,
    "delivered": flow_pb2.DELIVERY_STATUS_DELIVERED,
    "read": flow_pb2.DELIVERY_STATUS_READ,
    "played": flow_pb2.DELIVERY_STATUS_PLAYED,
    "failed": flow_pb2.DELIVERY_STATUS_FAILED,
}


@dataclass
class Parsed:
    """What one webhook POST holds, in payload order."""

    messages: list[flow_pb2.InboundMessage] = field(default_factory=list)
    statuses: list[flow_pb2.RecordStatusRequest] = field(default_factory=list)
    skipped: int = 0  # items under field "messages" that could not be understood
    ignored: int = 0  # changes of other fields (account_update, smb_message_echoes, ...)


def _timestamp(value: Any) -> Timestamp | None:
    raw = as_str(value)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    return Timestamp(seconds=int(raw))


def _content(message: dict[str, Any], inbound: flow_pb2.InboundMessage) -> None:
    kind = as_str(message.get("type")) or "unknown"
    if kind == "text":
        body = as_dict(message.get("text")).get("body")
        if isinstance(body, str):
            inbound.text = body
            return
    elif kind == "interactive":
        interactive = as_dict(message.get("interactive"))
        sub = as_str(interactive.get("type"))
        if sub in ("button_reply", "list_reply"):
            reply = as_dict(interactive.get(sub))
            if as_str(reply.get("id")):
                inbound.selection.id = as_str(reply.get("id"))
                inbound.selection.title = as_str(reply.get("title"))
                inbound.selection.description = as_str(reply.get("description"))
                return
        inbound.unsupported_type = sub or kind
        return
    elif kind == "button":
        button = as_dict(message.get("button"))
        if as_str(button.get("payload")) or as_str(button.get("text")):
            inbound.selection.id = as_str(button.get("payload")) or as_str(button.get("text"))
            inbound.selection.title = as_str(button.get("text"))
            return
    inbound.unsupported_type = kind


def _contact_names(value: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in as_list(value.get("contacts")):
        contact = as_dict(contact)
        name = as_str(as_dict(contact.get("profile")).get("name"))
        wa_id = as_str(contact.get("wa_id"))
        if name and wa_id:
            names[wa_id] = name
    return names


def _message(
    raw: Any, phone_number_id: str, names: dict[str, str]
) -> flow_pb2.InboundMessage | None:
    message = as_dict(raw)
    message_id, sender = as_str(message.get("id")), as_str(message.get("from"))
    if not (message_id and sender and phone_number_id):
        return None
    inbound = flow_pb2.InboundMessage(
        message_id=message_id,
        customer=flow_pb2.Customer(phone_number_id=phone_number_id, phone_number=sender),
        contact_name=names.get(sender, ""),
    )
    sent = _timestamp(message.get("timestamp"))
    if sent is not None:
        inbound.sent_time.CopyFrom(sent)
    _content(message, inbound)
    return inbound


def _status(raw: Any) -> flow_pb2.RecordStatusRequest | None:
    status = as_dict(raw)
    wa_message_id = as_str(status.get("id"))
    kind = _STATUSES.get(as_str(status.get("status")))
    if not wa_message_id or kind is None:
        return None
    request = flow_pb2.RecordStatusRequest(
        wa_message_id=wa_message_id,
        status=kind,
        recipient_id=as_str(status.get("recipient_id")),
        outbox_id=tracker.outbox_id(as_str(status.get(tracker.FIELD))),
        errors=[meta_error(error) for error in as_list(status.get("errors"))],
    )
    when = _timestamp(status.get("timestamp"))
    if when is not None:
        request.status_time.CopyFrom(when)
    return request


def parse(document: Any) -> Parsed:
    """Every message and status of every change of every entry; never raises."""
    parsed = Parsed()
    for entry in as_list(as_dict(document).get("entry")):
        for change in as_list(as_dict(entry).get("changes")):
            change = as_dict(change)
            if change.get("field") != "messages":
                parsed.ignored += 1
                continue
            value = as_dict(change.get("value"))
            phone_number_id = as_str(as_dict(value.get("metadata")).get("phone_number_id"))
            names = _contact_names(value)
            for raw in as_list(value.get("messages")):
                inbound = _message(raw, phone_number_id, names)
                if inbound is None:
                    parsed.skipped += 1
                else:
                    parsed.messages.append(inbound)
            for raw in as_list(value.get("statuses")):
                status = _status(raw)
                if status is None:
                    parsed.skipped += 1
                else:
                    parsed.statuses.append(status)
    return parsed
