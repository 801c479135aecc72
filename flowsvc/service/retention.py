"""Retention: finished results, sent or failed outbox messages, finished calls (their bodies hold
what customers typed, e.g. an address) and events are deleted past their age."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.store import events, retention


@dataclass(frozen=True)
class Purged:
    """How many rows one sweep deleted."""

    results: int = 0
    outbox_messages: int = 0
    events: int = 0
    calls: int = 0


class Retention:
    """The privacy half of the sweep (conversations and dedupe records are Conversations.sweep's).

    `keep` None keeps everything forever; `keep_events` is the event log's own (None: forever).
    Deletes run in batches of `batch` rows, one short transaction each, so a first sweep over
    years of rows never locks them all at once.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        keep: timedelta | None,
        *,
        keep_events: timedelta | None = None,
        batch: int = 1000,
        clock: Clock = utcnow,
    ) -> None:
        self._sessions = sessions
        self._keep = keep
        self._keep_events = keep_events
        self._batch = batch
        self._clock = clock

    def sweep(self) -> Purged:
        now = self._clock()
        purged = Purged()
        if self._keep is not None:
            cutoff = now - self._keep
            purged = Purged(
                results=self._in_batches(retention.remove_results, cutoff),
                outbox_messages=self._in_batches(retention.remove_finished_outbox, cutoff),
                calls=self._in_batches(retention.remove_finished_calls, cutoff),
            )
        if self._keep_events is not None:
            removed = self._in_batches(events.remove_older_than, now - self._keep_events)
            purged = replace(purged, events=removed)
        return purged

    def _in_batches(self, remove: Callable[[Session, datetime, int], int], cutoff: datetime) -> int:
        total = 0
        while True:
            with self._sessions.begin() as session:
                removed = remove(session, cutoff, self._batch)
            total += removed
            if removed < self._batch:
                return total
