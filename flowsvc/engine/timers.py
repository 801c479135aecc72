"""A step's `timeout`: what happens when the customer says nothing for a while (docs/templates.md).

    "timeout": {"after": "30m",                                   silence before `go` / `end`
                "remind": {"after": "10m", "times": 1, "text": "Still there?"},
                "go": "<step or flow:template>"  |  "end": "<text said as it ends>"}

A conversation waiting in such a step carries when its timer is next due and how many reminders
it has sent (State.silence_due_at, State.reminders). Arriving in a step (or any reply of the
customer's) arms it afresh; a fired timer (silence()) sends the next reminder or takes the
customer to the target. Each stage counts from the one before it: a reminder that fires late
still leaves the customer the full time to answer it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DURATION = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=30)
MAX_REMINDERS = 10


def parse_duration(raw: object) -> timedelta | None:
    """ "90s", "10m", "2h", "1d" as a timedelta (None: not a duration, or longer than 30 days)."""
    if not isinstance(raw, str):
        return None
    found = DURATION.match(raw)
    if found is None:
        return None
    value = timedelta(seconds=int(found.group(1)) * UNITS[found.group(2)])
    return value if value <= MAX_DURATION else None


@dataclass(frozen=True)
class TimeoutSpec:
    """A step's `timeout`, parsed; the validator has checked it (anything odd is left out)."""

    after: timedelta | None = None  # silence before `go` / `end` (None: reminders only)
    remind_after: timedelta | None = None
    remind_times: int = 0
    remind_text: str = ""
    go: str | None = None  # a step or flow:<template>
    end: str | None = None  # the text said as the conversation ends

    @property
    def reminders(self) -> int:
        """How many reminders are sent: `times`, but only those due before the `after`."""
        if self.remind_after is None or not self.remind_text:
            return 0
        if self.after is None:
            return self.remind_times
        fitting = 0
        while fitting < self.remind_times and (fitting + 1) * self.remind_after < self.after:
            fitting += 1
        return fitting

    @property
    def final(self) -> bool:
        return self.after is not None and (self.go is not None or self.end is not None)

    def first_due(self, now: datetime) -> datetime | None:
        """When the timer of a customer who just arrived (or answered) is due."""
        if self.reminders and self.remind_after is not None:
            return now + self.remind_after
        if self.final and self.after is not None:
            return now + self.after
        return None

    def due_after_reminder(self, sent: int, now: datetime) -> datetime | None:
        """When the timer is next due, `sent` reminders sent, the last one now."""
        if sent < self.reminders and self.remind_after is not None:
            return now + self.remind_after
        if self.final and self.after is not None and self.remind_after is not None:
            return now + (self.after - sent * self.remind_after)
        return None


def parse_timeout(raw: Any) -> TimeoutSpec | None:
    if not isinstance(raw, Mapping):
        return None
    remind = raw.get("remind")
    remind = remind if isinstance(remind, Mapping) else {}
    times = remind.get("times", 1)
    text = remind.get("text")
    go, end = raw.get("go"), raw.get("end")
    spec = TimeoutSpec(
        after=parse_duration(raw.get("after")),
        remind_after=parse_duration(remind.get("after")),
        remind_times=times if isinstance(times, int) and not isinstance(times, bool) else 0,
        remind_text=text if isinstance(text, str) else "",
        go=go if isinstance(go, str) and go else None,
        end=end if isinstance(end, str) and end else None,
    )
    if spec.first_due(datetime.min) is None:
        return None
    return spec
