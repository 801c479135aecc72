"""What the service takes in about a customer: an inbound message, and the checks it passes
before anything is locked or written."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowsvc.engine import Inbound
from flowsvc.engine.template import FLOW
from flowsvc.errors import InvalidArgument

MAX_TEXT_CHARS = 4096
_DIGITS = re.compile(r"[0-9]{1,32}")


@dataclass(frozen=True)
class InboundMessage:
    """One inbound message (the gateway's parse of a webhook)."""

    message_id: str
    phone_number_id: str
    phone_number: str
    contact_name: str = ""
    text: str | None = None
    selection_id: str | None = None
    selection_title: str = ""
    unsupported_type: str | None = None
    sent_at: datetime | None = None  # the webhook's timestamp: when the customer sent it
    # Media (type, id, mime_type, caption, filename), a location (latitude, longitude, name,
    # address) or contact cards: a step that accepts them stores them; an agent sees them.
    media: Mapping[str, str] | None = None
    location: Mapping[str, Any] | None = None
    contacts: tuple[Mapping[str, Any], ...] | None = None  # cards: name, phones
    # A WhatsApp Flow's reply: flow_token, response (its fields), body (the chat text).
    flow_reply: Mapping[str, Any] | None = None


def check_customer(phone_number_id: str, phone_number: str) -> list[tuple[str, str]]:
    """The (field, reason) problems of a customer's two numbers; empty when both are fine."""
    problems = []
    if not _DIGITS.fullmatch(phone_number_id):
        problems.append(("customer.phone_number_id", "required: Meta's id of the business number"))
    if not _DIGITS.fullmatch(phone_number):
        problems.append(("customer.phone_number", "required: the customer's wa_id (digits only)"))
    return problems


def engine_input(message: InboundMessage) -> Inbound:
    """What the engine reads of `message`; InvalidArgument listing every problem if it is bad."""
    problems = []
    if not message.message_id or len(message.message_id) > 255:
        problems.append(("message.message_id", "required, at most 255 characters"))
    problems += [
        (f"message.{field}", reason)
        for field, reason in check_customer(message.phone_number_id, message.phone_number)
    ]
    unsupported = message.unsupported_type
    attachment: Mapping[str, Any] | None = None
    flow_token: str | None = None
    if message.media is not None:
        unsupported = message.media.get("type") or "media"
        attachment = {k: v for k, v in message.media.items() if v}
    elif message.location is not None:
        unsupported = "location"
        attachment = {k: v for k, v in message.location.items() if v not in ("", None)}
    elif message.contacts is not None:
        unsupported = "contacts"
        attachment = {"cards": [dict(card) for card in message.contacts]}
    elif message.flow_reply is not None:
        unsupported = FLOW
        attachment = dict(message.flow_reply.get("response") or {})
        flow_token = str(message.flow_reply.get("flow_token") or "")
    if message.text is None and message.selection_id is None and unsupported is None:
        problems.append(
            (
                "message.content",
                "one of text, selection, media, location, contacts, flow_reply or "
                "unsupported_type is required",
            )
        )
    if message.media is not None and len(message.media.get("caption", "")) > MAX_TEXT_CHARS:
        problems.append(("message.media.caption", f"longer than {MAX_TEXT_CHARS} characters"))
    if message.text is not None and len(message.text) > MAX_TEXT_CHARS:
        problems.append(("message.text", f"longer than WhatsApp's {MAX_TEXT_CHARS} characters"))
    if problems:
        raise InvalidArgument("bad inbound message", problems)
    return Inbound(
        text=message.text,
        selection_id=message.selection_id,
        selection_title=message.selection_title,
        unsupported_type=unsupported,
        contact_name=message.contact_name,
        attachment=attachment,
        flow_token=flow_token,
    )


def content(message: InboundMessage) -> dict[str, Any]:
    """What the customer sent, as an agent sees it (a customer_message event's fields)."""
    if message.text is not None:
        return {"text": message.text}
    if message.selection_id is not None:
        return {"selection": {"id": message.selection_id, "title": message.selection_title}}
    if message.media is not None:
        return {"media": {k: v for k, v in message.media.items() if v}}
    if message.location is not None:
        return {"location": {k: v for k, v in message.location.items() if v not in ("", None)}}
    if message.contacts is not None:
        return {"contacts": [dict(card) for card in message.contacts]}
    if message.flow_reply is not None:
        return {"flow_reply": dict(message.flow_reply)}
    return {"unsupported_type": message.unsupported_type or ""}
