"""Meta webhook JSON to FlowService requests; tolerant: it skips and counts what it can't read.

Every field is read by the type Meta documents for it and within the length Meta sends
(`gateway/json_fields.py`): a value that does not fit reads as absent, so an item without a
readable id, sender or business number is skipped, while the other items of the same POST are
handled. What the items of one change have in common (the business number, the contact names) is
read once per change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from gateway import tracker
from gateway.flow_reply import Refused, read_flow_reply
from gateway.json_fields import (
    NAME_CHARS,
    NUMBER_CHARS,
    TEXT_CHARS,
    WORD_CHARS,
    as_dict,
    as_list,
    as_str,
)
from gateway.meta_errors import meta_error
from menuflow.v1 import flow_pb2

_STATUSES = {
    "sent": flow_pb2.DELIVERY_STATUS_SENT,
    "delivered": flow_pb2.DELIVERY_STATUS_DELIVERED,
    "read": flow_pb2.DELIVERY_STATUS_READ,
    "played": flow_pb2.DELIVERY_STATUS_PLAYED,
    "failed": flow_pb2.DELIVERY_STATUS_FAILED,
}
_Item = TypeVar("_Item", flow_pb2.InboundMessage, flow_pb2.RecordStatusRequest)
MAX_ERRORS = 10  # errors[] of one status kept (Meta sends one)
MAX_CARDS = 10  # contact cards of one message kept, and phone numbers of one card


# Message types whose object carries a media id (and maybe a caption): an agent downloads them.
_MEDIA = ("image", "video", "audio", "document", "sticker")


@dataclass
class Parsed:
    """What one webhook POST holds, in payload order."""

    messages: list[flow_pb2.InboundMessage] = field(default_factory=list)
    statuses: list[flow_pb2.RecordStatusRequest] = field(default_factory=list)
    skipped: int = 0  # items under field "messages" that could not be understood
    # (message id, reason) of the skipped messages refused for what they hold (a Flow reply
    # whose response_json is not a JSON object): logged one by one
    refused: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # changes of other fields (account_update, smb_message_echoes, ...)


def _timestamp(value: Any) -> Timestamp | None:
    raw = as_str(value, WORD_CHARS)
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    return Timestamp(seconds=int(raw))


def _content(message: dict[str, Any], inbound: flow_pb2.InboundMessage) -> None:
    kind = as_str(message.get("type"), WORD_CHARS) or "unknown"
    if kind == "text":
        body = as_dict(message.get("text")).get("body")
        if isinstance(body, str) and len(body) <= TEXT_CHARS:  # a number is not a text body
            inbound.text = as_str(body, TEXT_CHARS)  # lone surrogates repaired
            return
    elif kind == "interactive":
        interactive = as_dict(message.get("interactive"))
        sub = as_str(interactive.get("type"), WORD_CHARS)
        if sub in ("button_reply", "list_reply"):
            reply = as_dict(interactive.get(sub))
            if as_str(reply.get("id"), NAME_CHARS):
                inbound.selection.id = as_str(reply.get("id"), NAME_CHARS)
                inbound.selection.title = as_str(reply.get("title"), NAME_CHARS)
                inbound.selection.description = as_str(reply.get("description"), NAME_CHARS)
                return
        if sub == "nfm_reply":  # a WhatsApp Flow's reply, or another native flow's (address)
            reply = as_dict(interactive.get(sub))
            if as_str(reply.get("name"), WORD_CHARS) in ("flow", ""):
                inbound.flow_reply.CopyFrom(read_flow_reply(reply))  # raises Refused
                return
        inbound.unsupported_type = sub or kind
        return
    elif kind == "button":
        button = as_dict(message.get("button"))
        payload = as_str(button.get("payload"), TEXT_CHARS)
        text = as_str(button.get("text"), NAME_CHARS)
        if payload or text:
            inbound.selection.id = payload or text
            inbound.selection.title = text
            return
    elif kind in _MEDIA:
        media = as_dict(message.get(kind))
        if as_str(media.get("id")):
            inbound.media.type = kind
            inbound.media.id = as_str(media.get("id"))
            inbound.media.mime_type = as_str(media.get("mime_type"))
            inbound.media.caption = as_str(media.get("caption"))
            inbound.media.filename = as_str(media.get("filename"))
            return
    elif kind == "location":
        location = as_dict(message.get("location"))
        latitude, longitude = location.get("latitude"), location.get("longitude")
        if isinstance(latitude, int | float) and isinstance(longitude, int | float):
            inbound.location.latitude = float(latitude)
            inbound.location.longitude = float(longitude)
            inbound.location.name = as_str(location.get("name"))
            inbound.location.address = as_str(location.get("address"))
            return
    elif kind == "contacts":
        for card in as_list(message.get("contacts"))[:MAX_CARDS]:
            card = as_dict(card)
            name = as_dict(card.get("name"))
            phones = [
                as_str(as_dict(p).get("phone"), NAME_CHARS) for p in as_list(card.get("phones"))
            ]
            inbound.contacts.cards.add(
                name=as_str(name.get("formatted_name"), NAME_CHARS),
                phones=[phone for phone in phones if phone][:MAX_CARDS],
            )
        if inbound.contacts.cards:
            return
    inbound.unsupported_type = kind


def _contact_names(value: dict[str, Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for contact in as_list(value.get("contacts")):
        contact = as_dict(contact)
        name = as_str(as_dict(contact.get("profile")).get("name"), NAME_CHARS)
        wa_id = as_str(contact.get("wa_id"), NUMBER_CHARS)
        if name and wa_id:
            names[wa_id] = name
    return names


def _message(
    raw: Any, phone_number_id: str, names: dict[str, str]
) -> flow_pb2.InboundMessage | None:
    message = as_dict(raw)
    message_id, sender = as_str(message.get("id")), as_str(message.get("from"), NUMBER_CHARS)
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
    try:
        _content(message, inbound)
    except Refused as refused:
        raise Refused(refused.reason, message_id) from None
    return inbound


def _status(raw: Any) -> flow_pb2.RecordStatusRequest | None:
    status = as_dict(raw)
    wa_message_id = as_str(status.get("id"))
    kind = _STATUSES.get(as_str(status.get("status"), WORD_CHARS))
    if not wa_message_id or kind is None:
        return None
    request = flow_pb2.RecordStatusRequest(
        wa_message_id=wa_message_id,
        status=kind,
        recipient_id=as_str(status.get("recipient_id"), NUMBER_CHARS),
        outbox_id=tracker.outbox_id(as_str(status.get(tracker.FIELD))),
        errors=[meta_error(error) for error in as_list(status.get("errors"))[:MAX_ERRORS]],
    )
    when = _timestamp(status.get("timestamp"))
    if when is not None:
        request.status_time.CopyFrom(when)
    return request


def _changes(document: Any) -> Iterator[dict[str, Any]]:
    for entry in as_list(as_dict(document).get("entry")):
        for change in as_list(as_dict(entry).get("changes")):
            yield as_dict(change)


def updates(document: Any) -> int:
    """How many updates (messages and statuses) a webhook carries, counted without reading them:
    Meta sends at most 1,000 in one POST."""
    total = 0
    for change in _changes(document):
        value = as_dict(change.get("value"))
        total += len(as_list(value.get("messages"))) + len(as_list(value.get("statuses")))
    return total


def _item(read: Callable[..., _Item | None], *args: Any) -> _Item | None:
    """An item read alone: whatever is wrong with it, the other items of the POST still count."""
    try:
        return read(*args)
    except (ValueError, TypeError):  # a value protobuf refuses that the typed reading let by
        return None


def parse(document: Any) -> Parsed:
    """Every message and status of every change of every entry; never raises."""
    parsed = Parsed()
    for change in _changes(document):
        if change.get("field") != "messages":
            parsed.ignored += 1
            continue
        value = as_dict(change.get("value"))
        phone_number_id = as_str(
            as_dict(value.get("metadata")).get("phone_number_id"), NUMBER_CHARS
        )
        names = _contact_names(value)
        for raw in as_list(value.get("messages")):
            try:
                inbound = _item(_message, raw, phone_number_id, names)
            except Refused as refused:
                parsed.skipped += 1
                parsed.refused.append((refused.message_id, refused.reason))
                continue
            if inbound is None:
                parsed.skipped += 1
            else:
                parsed.messages.append(inbound)
        for raw in as_list(value.get("statuses")):
            status = _item(_status, raw)
            if status is None:
                parsed.skipped += 1
            else:
                parsed.statuses.append(status)
    return parsed
