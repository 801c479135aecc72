"""Meta's 24-hour customer service window: free-form messages reach a customer only within 24
hours of their last message to the business number; outside it only a message template does
(else Meta answers 131047). flowsvc knows the customer's last message time from the lock row
each of their messages updates, and refuses a free-form send outside the window up front."""

from __future__ import annotations

from datetime import datetime, timedelta

from flowsvc.errors import FailedPrecondition

WINDOW = timedelta(hours=24)


def is_open(last_inbound_at: datetime | None, now: datetime) -> bool:
    """Whether a free-form message sent now is within the window."""
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


def closed(last_inbound_at: datetime | None, *, handed_off: bool = False) -> FailedPrecondition:
    """The refusal of a free-form message outside the window, saying why and what to do."""
    when = (
        f"last wrote at {last_inbound_at.isoformat(timespec='seconds')}"
        if last_inbound_at is not None
        else "has never written to this business number"
    )
    return FailedPrecondition(
        f"outside Meta's 24-hour customer service window: the customer {when}, so WhatsApp "
        "delivers no free-form message (it would fail with 131047); send a message template "
        "(the request's template field) instead"
        + (
            "; the customer is handed off to people: an agent's reply must be a message "
            "template (SendMessage with template) until the customer writes again"
            if handed_off
            else ""
        )
    )
