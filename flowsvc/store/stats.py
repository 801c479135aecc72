"""Flow stats: the event log's conversation events of one template, counted in the database.

A GROUP BY over the template's events in a time range (the index on template_name and
created_at finds them without reading other templates' events), so the rows that come back are
a few per step whatever the number of events. Moves into other templates are step_entered events
of those templates naming this one as previous_template: a second GROUP BY reads them among the
events of the templates this one targets (flow:NAME), through the same index.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flowsvc.store.models import Event

# The events that say where a conversation went or stopped.
TYPES = (
    "conversation_started",
    "step_entered",
    "flow_completed",
    "conversation_ended",
    "conversation_cancelled",
    "conversation_expired",
    "handoff_requested",
)


@dataclass(frozen=True, slots=True)
class Count:
    """How many events of a type at a step ("" for none). For step_entered: the step it came from
    ("" at a start) and that step's template ("" for the same one)."""

    type: str
    step: str
    previous_step: str
    previous_template: str
    count: int


@dataclass(frozen=True, slots=True)
class Departure:
    """How many conversations went from this template's `step` to another template's step."""

    step: str
    template: str
    next_step: str
    count: int


def counts(
    session: Session, name: str, version: int, start: datetime, end: datetime
) -> list[Count]:
    """The template's (version's, if not 0) counts of TYPES in [start, end)."""
    step = Event.payload["step"].as_string()
    previous = Event.payload["previous_step"].as_string()
    previous_template = Event.payload["previous_template"].as_string()
    query = (
        select(Event.type, step, previous, previous_template, func.count())
        .where(
            Event.template_name == name,
            Event.created_at >= start,
            Event.created_at < end,
            Event.type.in_(TYPES),
        )
        .group_by(Event.type, step, previous, previous_template)
    )
    if version:
        query = query.where(Event.template_version == version)
    return [
        Count(type_, step_ or "", previous_ or "", template or "", int(n))
        for type_, step_, previous_, template, n in session.execute(query).all()
    ]


def departures(
    session: Session,
    name: str,
    version: int,
    targets: Collection[str],
    start: datetime,
    end: datetime,
) -> list[Departure]:
    """Moves from the template (version, if not 0) into the templates it targets (`targets`,
    from its definition) in [start, end): their step_entered events that name it as
    previous_template, found through the same index (one template's events of the range)."""
    if not targets:
        return []
    previous = Event.payload["previous_step"].as_string()
    step = Event.payload["step"].as_string()
    query = (
        select(previous, Event.template_name, step, func.count())
        .where(
            Event.template_name.in_(sorted(targets)),
            Event.created_at >= start,
            Event.created_at < end,
            Event.type == "step_entered",
            Event.payload["previous_template"].as_string() == name,
        )
        .group_by(previous, Event.template_name, step)
    )
    if version:
        query = query.where(Event.payload["previous_version"].as_integer() == version)
    return [
        Departure(previous_ or "", template, step_ or "", int(n))
        for previous_, template, step_, n in session.execute(query).all()
    ]


def oldest(session: Session) -> datetime | None:
    """When the oldest event kept was written (None: no events)."""
    return session.scalar(select(Event.created_at).order_by(Event.id).limit(1))
