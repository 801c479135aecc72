"""GetFlowStats: where customers drop off, counted from the event log.

The counts come from one aggregate query (store.stats); this module lays them out per step in
the order a customer meets the steps. The range is bounded (by default the last week), and the
event log keeps no more than FLOWSVC_EVENT_RETENTION_DAYS anyway.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import utcnow
from flowsvc.engine import load_template
from flowsvc.errors import InvalidArgument, NotFound
from flowsvc.store import stats, templates
from flowsvc.validation import template_targets

DEFAULT_PERIOD = timedelta(days=7)
_VERSIONS = 10_000  # versions whose flow: targets are looked in (all of them, in practice)

# The event types that end a conversation at a step, and the StepStats field each counts in.
_ENDINGS = {
    "conversation_expired": "expired",
    "conversation_cancelled": "cancelled",
    "conversation_ended": "ended",
    "handoff_requested": "handed_off",
}


@dataclass
class StepStats:
    """One step's counts; `exits` maps each next step to how many went there."""

    step: str
    entered: int = 0
    exits: Counter[str] = field(default_factory=Counter)
    expired: int = 0
    cancelled: int = 0
    ended: int = 0
    handed_off: int = 0
    completed: int = 0

    @property
    def stopped(self) -> int:
        """Entered and not left, ended or completed (never below 0: a range can cut a
        conversation's events in two)."""
        done = self.expired + self.cancelled + self.ended + self.handed_off + self.completed
        return max(0, self.entered - sum(self.exits.values()) - done)


@dataclass
class FlowStats:
    """A template's funnel over [start, end)."""

    name: str
    version: int
    start: datetime
    end: datetime
    started: int = 0
    completed: int = 0
    steps: list[StepStats] = field(default_factory=list)
    oldest_event: datetime | None = None

    def total(self, kind: str) -> int:
        """The sum over the steps of one ending ("expired", "cancelled", "ended", "handed_off")."""
        return sum(getattr(step, kind) for step in self.steps)


class FlowStatistics:
    """Flow stats from the event log; one read-only transaction per call."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(
        self, name: str, version: int, start: datetime | None, end: datetime | None
    ) -> FlowStats:
        """The funnel of template `name` (version `version`; 0: all) from `start` (default: a
        week before `end`) until `end` (default: now)."""
        end = end or utcnow()
        start = start or end - DEFAULT_PERIOD
        if start >= end:
            raise InvalidArgument(
                "the time range ends before it starts",
                [("end_time", f"{end.isoformat()} is not after start_time {start.isoformat()}")],
            )
        with self._sessions() as session:
            head = templates.head(session, name)
            if head is None:
                raise NotFound(f"template {name!r} does not exist")
            row = templates.version(session, head, version or head.version)
            if row is None:
                raise NotFound(f"template {name!r} has no version {version}")
            order = load_template(
                row.template_name,
                row.version,
                row.menu_structure,
                trigger_keywords=row.trigger_keywords,
                is_active=row.is_active,
            ).step_order()
            counts = stats.counts(session, name, version, start, end)
            structures = (
                [row.menu_structure]
                if version
                else [
                    v.menu_structure
                    for v in templates.versions_page(session, head, before=None, limit=_VERSIONS)
                ]
            )
            targets = set().union(*(template_targets(s) for s in structures)) - {name}
            departures = stats.departures(session, name, version, targets, start, end)
            oldest = stats.oldest(session)
        found = FlowStats(name, version, start, end, oldest_event=oldest)
        steps: dict[str, StepStats] = {step: StepStats(step) for step in order}

        def at(step: str) -> StepStats:
            return steps.setdefault(step, StepStats(step))

        for count in counts:
            if count.type == "conversation_started":
                found.started += count.count
            elif count.type == "step_entered" and count.previous_template:
                found.started += count.count  # came over from another template
                at(count.step).entered += count.count
            elif count.type == "flow_completed":
                found.completed += count.count
                if count.step:
                    at(count.step).completed += count.count
            elif count.type == "step_entered" and count.step:
                at(count.step).entered += count.count
                if count.previous_step:
                    at(count.previous_step).exits[count.step] += count.count
            elif count.type in _ENDINGS and count.step:
                stat = at(count.step)
                kind = _ENDINGS[count.type]
                setattr(stat, kind, getattr(stat, kind) + count.count)
        for departure in departures:
            if departure.step:
                target = f"{departure.template}:{departure.next_step}"
                at(departure.step).exits[target] += departure.count
        known = [steps.pop(step) for step in order]
        found.steps = known + sorted(
            (s for s in steps.values() if _counted(s)), key=lambda s: s.step
        )
        return found


def _counted(step: StepStats) -> bool:
    return bool(
        step.entered
        or step.exits
        or step.expired
        or step.cancelled
        or step.ended
        or step.handed_off
        or step.completed
    )
