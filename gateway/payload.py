"""Meta webhook JSON to FlowService requests; tolerant: it skips and counts what it can't read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

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


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:  # lone surrogates ("\\ud800"): protobuf refuses them
            return value.encode("utf-8", "replace").decode()
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _timestamp(value: Any) -> Timestamp | None:
    raw = _str(value)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    return Timestamp(seconds=int(raw))


def meta_error(raw: Any) -> flow_pb2.MetaError:
    """A Meta error object (webhook errors[] or a Graph API error) as the proto carries it."""
    error = _dict(raw)
    code = error.get("code")
    return flow_pb2.MetaError(
        code=code if isinstance(code, int) and -(2**31) <= code < 2**31 else 0,
        title=_str(error.get("title")) or _str(error.get("message")),
        details=_str(_dict(error.get("error_data")).get("details")),
    )


def _content(message: dict[str, Any], inbound: flow_pb2.InboundMessage) -> None:
    kind = _str(message.get("type")) or "unknown"
    if kind == "text":
        body = _dict(message.get("text")).get("body")
        if isinstance(body, str):
            inbound.text = body
            return
    elif kind == "interactive":
        interactive = _dict(message.get("interactive"))
        sub = _str(interactive.get("type"))
        if sub in ("button_reply", "list_reply"):
            reply = _dict(interactive.get(sub))
            if _str(reply.get("id")):
                inbound.selection.id = _str(reply.get("id"))
                inbound.selection.title = _str(reply.get("title"))
                inbound.selection.description = _str(reply.get("description"))
                return
        inbound.unsupported_type = sub or kind
        return
    elif kind == "button":
        button = _dict(message.get("button"))
        if _str(button.get("payload")) or _str(button.get("text")):
            inbound.selection.id = _str(button.get("payload")) or _str(button.get("text"))
            inbound.selection.title = _str(button.get("text"))
            return
    inbound.unsupported_type = kind


def _contact_names(value: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in _list(value.get("contacts")):
        contact = _dict(contact)
        name = _str(_dict(contact.get("profile")).get("name"))
        wa_id = _str(contact.get("wa_id"))
        if name and wa_id:
            names[wa_id] = name
    return names


def _message(
    raw: Any, phone_number_id: str, names: dict[str, str]
) -> flow_pb2.InboundMessage | None:
    message = _dict(raw)
    message_id, sender = _str(message.get("id")), _str(message.get("from"))
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
    status = _dict(raw)
    wa_message_id = _str(status.get("id"))
    kind = _STATUSES.get(_str(status.get("status")))
    if not wa_message_id or kind is None:
        return None
    request = flow_pb2.RecordStatusRequest(
        wa_message_id=wa_message_id,
        status=kind,
        recipient_id=_str(status.get("recipient_id")),
        errors=[meta_error(error) for error in _list(status.get("errors"))],
    )
    when = _timestamp(status.get("timestamp"))
    if when is not None:
        request.status_time.CopyFrom(when)
    return request


def parse(document: Any) -> Parsed:
    """Every message and status of every change of every entry; never raises."""
    parsed = Parsed()
    for entry in _list(_dict(document).get("entry")):
        for change in _list(_dict(entry).get("changes")):
            change = _dict(change)
            if change.get("field") != "messages":
                parsed.ignored += 1
                continue
            value = _dict(change.get("value"))
            phone_number_id = _str(_dict(value.get("metadata")).get("phone_number_id"))
            names = _contact_names(value)
            for raw in _list(value.get("messages")):
                inbound = _message(raw, phone_number_id, names)
                if inbound is None:
                    parsed.skipped += 1
                else:
                    parsed.messages.append(inbound)
            for raw in _list(value.get("statuses")):
                status = _status(raw)
                if status is None:
                    parsed.skipped += 1
                else:
                    parsed.statuses.append(status)
    return parsed
