"""What the service takes in about a customer: an inbound message, and the checks it passes
before anything is locked or written."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flowsvc.engine import Inbound
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
    if message.text is None and message.selection_id is None and message.unsupported_type is None:
        problems.append(
            ("message.content", "one of text, selection or unsupported_type is required")
        )
    if message.text is not None and len(message.text) > MAX_TEXT_CHARS:
        problems.append(("message.text", f"longer than WhatsApp's {MAX_TEXT_CHARS} characters"))
    if problems:
        raise InvalidArgument("bad inbound message", problems)
    return Inbound(
        text=message.text,
        selection_id=message.selection_id,
        selection_title=message.selection_title,
        unsupported_type=message.unsupported_type,
        contact_name=message.contact_name,
    )
