"""WatchEvents and ListEvents: the event log read in id order (which is commit order), filtered.

A watcher resumes after the last id it saw and gets every later event at least once. Catching up
it reads the hub's buffer, or the database a batch at a time (one short session per batch);
following along it takes what the process's EventHub pushes into its own bounded queue, already
filtered, holding no connection while it waits. A watcher too slow for its queue is dropped from
the fan-out and catches up again from the last id it sent. A position retention has deleted
past is refused (OUT_OF_RANGE), never skipped over in silence.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.errors import InvalidArgument, OutOfRange
from flowsvc.service.event_hub import Committed, EventHub, committed, matches
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import events
from flowsvc.store.events import Filter

TYPES = frozenset(
    {
        "conversation_started",
        "step_entered",
        "flow_completed",
        "conversation_ended",
        "conversation_cancelled",
        "conversation_expired",
        "conversation_updated",
        "message_queued",
        "message_sent",
        "message_delivered",
        "message_read",
        "message_failed",
        "inbound_unhandled",
        "handoff_requested",
        "customer_message",
        "handoff_resumed",
        "timer_fired",
        "call_queued",
        "call_completed",
        "call_failed",
    }
)
_CATCH_UP_BATCH = 500
_BATCH = 500  # events in one response at most


@dataclass(frozen=True)
class Page:
    """A page of ListEvents."""

    items: list[Committed]
    next_page_token: str
    last_id: int


class EventFeed:
    """The event log for readers."""

    def __init__(self, sessions: sessionmaker[Session], hub: EventHub) -> None:
        self._sessions = sessions
        self._hub = hub

    def page(self, after_id: int, wanted: Filter, requested_size: int, token: str) -> Page:
        size = page_size(requested_size)
        _check(after_id, wanted)
        cursor = decode_token(token, int)
        with self._sessions() as session:
            last, purged = events.bounds(session)
            start = _start(after_id if cursor is None else cursor, last, purged)
            rows = events.read(session, start, last, wanted, size + 1)
        items = [committed(row) for row in rows[:size]]
        more = len(rows) > size
        return Page(items, encode_token(items[-1].id) if more else "", last)

    @asynccontextmanager
    async def watching(
        self, after_id: int | None, wanted: Filter
    ) -> AsyncIterator[AsyncIterator[list[Committed]]]:
        """A watcher's place and where it starts (after `after_id`; None: after the newest
        event now), both settled on entering: the caller can tell its client the stream is open,
        and every event committed from then on reaches it. Inside, the events as they commit
        (`_follow`). RESOURCE_EXHAUSTED when every place is taken; OUT_OF_RANGE for a start
        retention deleted or past the newest event."""
        _check(after_id or 0, wanted)
        with self._hub.watcher():
            last, purged = await asyncio.to_thread(self._bounds)
            cursor = last if after_id is None else _start(after_id, last, purged)
            following = self._follow(cursor, wanted)
            try:
                yield following
            finally:  # its subscription ends with the place, not when it is garbage
                await following.aclose()

    async def _follow(self, cursor: int, wanted: Filter) -> AsyncGenerator[list[Committed], None]:
        """Events after `cursor` as they commit, in batches of at most `_BATCH`, until the
        caller stops iterating (or is cancelled) or the process stops. The database is read on
        the thread pool; the waiting is on the event loop."""
        while not self._hub.stopping:
            # Subscribed first, then caught up to where the subscription starts: no load falls
            # between the two (one may come twice; ids at or before `cursor` are dropped).
            with self._hub.subscribe(wanted) as subscription:
                while cursor < subscription.start:
                    buffered = self._hub.since(cursor)
                    if buffered is None:
                        found, cursor = await asyncio.to_thread(self._catch_up, cursor, wanted)
                    else:
                        found, cursor = buffered
                        found = [item for item in found if matches(item, wanted)]
                    for batch in _batches(found):
                        yield batch
                while not self._hub.stopping and not subscription.overflowed:
                    loads = await subscription.take()
                    if not loads:
                        continue
                    # One load (a stream keeping up): its list as is, shared with the other
                    # streams of the filter. Several (a stream that fell behind while it sent):
                    # all in one response, so that it catches up rather than falling further
                    # behind one response per load.
                    if len(loads) == 1:
                        found = loads[0].items
                    else:
                        found = [item for load in loads for item in load.items]
                    if found[0].id <= cursor:
                        found = [item for item in found if item.id > cursor]
                    cursor = max(cursor, loads[-1].through)
                    for batch in _batches(found):
                        yield batch

    def _bounds(self) -> tuple[int, int]:
        with self._sessions() as session:
            return events.bounds(session)

    def _catch_up(self, cursor: int, wanted: Filter) -> tuple[list[Committed], int]:
        """The next batch from the database, for a watcher behind the hub's buffer."""
        with self._sessions() as session:
            last, purged = events.bounds(session)
            if cursor < purged:
                raise _past_retention(cursor, purged)
            rows = events.read(session, cursor, last, wanted, _CATCH_UP_BATCH)
        found = [committed(row) for row in rows]
        full = len(rows) == _CATCH_UP_BATCH
        return found, found[-1].id if full else last


def _batches(found: list[Committed]) -> Iterator[list[Committed]]:
    """`found` in responses of at most _BATCH events (the list itself when it fits, so that
    streams following the same filter share it)."""
    if len(found) <= _BATCH:
        if found:
            yield found
        return
    for start in range(0, len(found), _BATCH):
        yield found[start : start + _BATCH]


def _check(after_id: int, wanted: Filter) -> None:
    problems = []
    if after_id < 0:
        problems.append(("after_id", "must not be negative"))
    unknown = wanted.types - TYPES
    if unknown:
        problems.append(("filter.types", f"unknown event types {sorted(unknown)}"))
    if problems:
        raise InvalidArgument("bad event request", problems)


def _start(after_id: int, last: int, purged: int) -> int:
    """Where reading after `after_id` starts: there, or refused if retention deleted events
    after it or it is past the newest event (0: from the oldest kept)."""
    if after_id == 0:
        return purged
    if after_id > last:
        raise OutOfRange(
            "no such event",
            [("after_id", f"{after_id} is past the newest event, {last}")],
        )
    if after_id < purged:
        raise _past_retention(after_id, purged)
    return after_id


def _past_retention(after_id: int, purged: int) -> OutOfRange:
    return OutOfRange(
        "events past retention",
        [
            (
                "after_id",
                f"the events after {after_id} through {purged} were deleted by retention "
                f"(FLOWSVC_EVENT_RETENTION_DAYS); the oldest kept is {purged + 1}: resume from "
                f"{purged} (events were missed) or from now",
            )
        ],
    )
