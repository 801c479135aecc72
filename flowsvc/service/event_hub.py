"""One flowsvc process's view of the event log for its watchers: the newest events, read once
from the database into memory however many streams follow them, and the wait for newer ones.

What wakes it: this process's own commits (store.events' LAST_ID, at once), and on PostgreSQL
the NOTIFY that every commit of events sends, on one LISTEN connection per process; on SQLite a
poll of the counter every `poll_seconds` (other processes' commits). One reader thread then loads
the new events, in id order, into a buffer of the latest `capacity`; a watcher reads the buffer
and holds no database connection while it waits. A watcher further behind reads the database.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, event
from sqlalchemy.orm import Session, sessionmaker

from flowsvc.errors import ResourceExhausted
from flowsvc.store import events
from flowsvc.store.customers import Customer

log = logging.getLogger("flowsvc.events")

_READ_BATCH = 1000
_PACE = 0.01  # seconds


@dataclass(frozen=True, slots=True)
class Committed:
    """An event as it was committed."""

    id: int
    type: str
    customer: Customer
    template_name: str
    template_version: int
    created_at: datetime
    payload: dict[str, Any]


def committed(row: Row[Any]) -> Committed:
    return Committed(
        id=row.id,
        type=row.type,
        customer=(row.phone_number_id, row.phone_number),
        template_name=row.template_name,
        template_version=row.template_version,
        created_at=row.created_at,
        payload=row.payload,
    )


class EventHub:
    """The latest events in memory, and the watchers waiting for more."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        capacity: int = 10_000,
        poll_seconds: float = 0.5,
        max_watchers: int = 100,
    ) -> None:
        self._sessions = sessions
        self._capacity = capacity
        self._poll_seconds = poll_seconds
        self._slots = threading.BoundedSemaphore(max_watchers)
        self._max_watchers = max_watchers
        self._changed = threading.Condition()
        self._buffer: deque[Committed] = deque(maxlen=capacity)
        self._known = 0  # the newest id known to be committed
        self._loaded = 0  # the newest id in the buffer (or before it, when it started)
        self._watching = 0  # open watchers: with none, new events are not read at all
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Written to by stop(): wakes the PostgreSQL LISTEN loop out of its select() at once, so
        # that a stop (a deploy, a SIGTERM) does not wait out the select's timeout.
        self._wake_read, self._wake_write = -1, -1
        event.listen(sessions, "after_commit", self._after_commit)

    def start(self) -> None:
        with self._sessions() as session:
            self._known = self._loaded = events.bounds(session)[0]
        postgres = self._sessions.kw["bind"].dialect.name == "postgresql"
        if postgres:
            self._wake_read, self._wake_write = os.pipe()
        waker = self._listen if postgres else self._poll
        for name, target in (("reader", self._read), ("waker", waker)):
            thread = threading.Thread(target=target, name=f"flowsvc-events-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        if self._wake_write >= 0:
            os.write(self._wake_write, b"x")
        for thread in self._threads:
            thread.join(timeout=5)
        if self._wake_read >= 0 and not any(thread.is_alive() for thread in self._threads):
            os.close(self._wake_read)
            os.close(self._wake_write)
            self._wake_read = self._wake_write = -1

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def advance(self, last_id: int) -> None:
        """Events up to `last_id` are committed."""
        with self._changed:
            if last_id > self._known:
                self._known = last_id
                self._changed.notify_all()

    @contextmanager
    def watcher(self) -> Iterator[None]:
        """A watcher's place; RESOURCE_EXHAUSTED when all `max_watchers` are taken."""
        if not self._slots.acquire(blocking=False):
            raise ResourceExhausted(
                f"{self._max_watchers} event streams are open already "
                "(FLOWSVC_EVENT_MAX_WATCHERS); close one or try later"
            )
        with self._changed:
            self._watching += 1
        try:
            yield
        finally:
            with self._changed:
                self._watching -= 1
            self._slots.release()

    def after(self, cursor: int, timeout: float) -> tuple[list[Committed], int] | None:
        """The buffered events after `cursor` and the id they run to, waiting up to `timeout`
        for some ([] and `cursor` if none came); None if `cursor` is before the buffer (the
        caller reads the database)."""
        with self._changed:
            self._changed.wait_for(lambda: self._loaded > cursor or self.stopping, timeout)
            if self._loaded <= cursor:
                return [], cursor
            first = self._buffer[0].id if self._buffer else self._loaded + 1
            if cursor + 1 < first:
                return None
            skip = cursor + 1 - first
            if skip < len(self._buffer) and self._buffer[skip].id == cursor + 1:  # contiguous ids
                found = [self._buffer[i] for i in range(skip, len(self._buffer))]
            else:
                found = [e for e in self._buffer if e.id > cursor]
            return found, self._loaded

    def _after_commit(self, session: Session) -> None:
        last_id = session.info.pop(events.LAST_ID, 0)
        if last_id:
            self.advance(last_id)

    def _read(self) -> None:
        """Load committed events into the buffer as they become known, in id order."""
        while not self.stopping:
            # At most one read per _PACE: under load, many commits' events go out together
            # (one wake-up and one response per watcher), for at most _PACE more latency.
            self._stopping.wait(_PACE)
            with self._changed:
                self._changed.wait_for(lambda: self._known > self._loaded or self.stopping, 1.0)
                start, target = self._loaded, self._known
                if target > start and not self._watching:  # nobody to read them for
                    self._buffer.clear()
                    self._loaded = target
                    continue
            if target <= start:
                continue
            try:
                with self._sessions() as session:
                    rows = events.read(session, start, target, events.Filter(), _READ_BATCH)
                    loaded = [committed(row) for row in rows]
            except Exception as error:  # the database may be away: try again shortly
                log.warning("reading new events failed", extra={"error": _name(error)})
                self._stopping.wait(1.0)
                continue
            with self._changed:
                self._buffer.extend(loaded)
                full = len(loaded) == _READ_BATCH
                self._loaded = loaded[-1].id if full else target
                self._changed.notify_all()

    def _poll(self) -> None:
        """SQLite: read the counter every poll interval (commits of other processes)."""
        while not self._stopping.wait(self._poll_seconds):
            try:
                with self._sessions() as session:
                    self.advance(events.bounds(session)[0])
            except Exception as error:
                log.warning("polling for events failed", extra={"error": _name(error)})

    def _listen(self) -> None:
        """PostgreSQL: LISTEN on one connection of its own, for every watcher of the process."""
        delay = 0.5
        engine = self._sessions.kw["bind"]
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        while not self.stopping:
            connection: Any = None
            try:
                # Its own connection, outside the pool: it stays in LISTEN for the process's life.
                connection = engine.dialect.connect(*cargs, **cparams)
                connection.autocommit = True
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {events.CHANNEL}")
                with self._sessions() as session:  # what was committed before the LISTEN
                    self.advance(events.bounds(session)[0])
                delay = 0.5
                while not self.stopping:
                    ready = select.select([connection, self._wake_read], [], [], 1.0)[0]
                    if connection in ready:
                        connection.poll()
                        newest = max((int(n.payload) for n in connection.notifies), default=0)
                        connection.notifies.clear()
                        self.advance(newest)
            except Exception as error:
                log.warning(
                    "listening for events failed, reconnecting",
                    extra={"error": _name(error), "retry_in": delay},
                )
                self._stopping.wait(delay)
                delay = min(delay * 2, 10.0)
            finally:
                if connection is not None and not connection.closed:
                    connection.close()


def _name(error: Exception) -> str:
    """What failed, without a traceback (the database being away is expected now and then)."""
    return type(getattr(error, "orig", None) or error).__name__
