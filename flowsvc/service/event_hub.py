"""One flowsvc process's view of the event log for its watchers: the newest events, read once
from the database into memory however many streams follow them, and handed to each stream.

What wakes it: this process's own commits (store.events' LAST_ID, at once), and on PostgreSQL
the NOTIFY that every commit of events sends, on one LISTEN connection per process; on SQLite a
poll of the counter every `poll_seconds` (other processes' commits). One reader thread then loads
the new events, in id order, into a buffer of the latest `capacity`, and fans each load out: it
filters the load once per distinct filter and appends the result to the bounded queue of every
subscription with that filter, waking only those streams (one call into the event loop they
wait on). A stream waits on its own queue (not on every load of the hub), on the server's event
loop: it holds neither a thread nor a database connection while it waits. A slow stream never
holds the reader up: when its queue overflows it is dropped, and the stream catches up from the
buffer or the database from the last id it sent, as a watcher that starts far behind does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import threading
import time
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
from flowsvc.store.events import Filter

log = logging.getLogger("flowsvc.events")

_READ_BATCH = 1000
_QUEUE_EVENTS = 10_000  # events one subscription's queue holds before it overflows


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


def matches(item: Committed, wanted: Filter) -> bool:
    return (
        (not wanted.types or item.type in wanted.types)
        and (not wanted.template_name or item.template_name == wanted.template_name)
        and (not wanted.phone_number_id or item.customer[0] == wanted.phone_number_id)
        and (not wanted.phone_number or item.customer[1] == wanted.phone_number)
    )


@dataclass(frozen=True, slots=True)
class Load:
    """One load of the hub as a subscription sees it: the events its filter matches among those
    after `after` through `through` (the list is shared by every subscription with that filter)."""

    after: int
    through: int
    items: list[Committed]


class Subscription:
    """A stream's queue of the hub's loads, from `start` (the hub's newest id when it subscribed)
    on, taken on the stream's event loop. Bounded: past `limit` queued events it is
    `overflowed`, and gets nothing more."""

    def __init__(
        self, wanted: Filter, start: int, limit: int, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.wanted = wanted
        self.start = start
        self.loop = loop
        self._limit = limit
        self._lock = threading.Lock()
        self._loads: deque[Load] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self.overflowed = False

    def put(self, load: Load) -> None:
        """From the reader thread: never blocks on the stream, and does not wake it (`wake`)."""
        with self._lock:
            if self.overflowed:
                return
            if self._queued + len(load.items) > self._limit:
                self.overflowed = True
                self._loads.clear()
                self._queued = 0
            else:
                self._loads.append(load)
                self._queued += len(load.items)

    def wake(self) -> None:
        """On the subscription's loop."""
        self._ready.set()

    async def take(self) -> list[Load]:
        """The loads queued since the last take, waiting for a wake-up ([] if it brought none:
        the hub stopping, say)."""
        await self._ready.wait()
        self._ready.clear()
        with self._lock:
            loads = list(self._loads)
            self._loads.clear()
            self._queued = 0
        return loads


class EventHub:
    """The latest events in memory, and the watchers waiting for more."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        capacity: int = 10_000,
        poll_seconds: float = 0.5,
        max_watchers: int = 100,
        queue_events: int = _QUEUE_EVENTS,
        batch_seconds: float = 0.025,
    ) -> None:
        self._sessions = sessions
        self._capacity = capacity
        self._poll_seconds = poll_seconds
        # At most one read of new events per `batch_seconds`, counted from the start of the
        # previous read: each read is a wake-up and a response for every stream it has events
        # for, so this bounds a stream's responses per second whatever the commit rate (under
        # load, the events of every commit meanwhile go out together); a commit after a quiet
        # spell is read at once.
        self._batch_seconds = batch_seconds
        self._slots = threading.BoundedSemaphore(max_watchers)
        self._max_watchers = max_watchers
        self._changed = threading.Condition()
        self._buffer: deque[Committed] = deque(maxlen=capacity)
        self._known = 0  # the newest id known to be committed
        self._loaded = 0  # the newest id in the buffer (or before it, when it started)
        # Only the event types some subscription wants are read (empty: every type): 100 streams
        # following step entries cost a read of step entries, not of every event. The buffer
        # holds every event of those types after `_buffer_from`.
        self._reading: frozenset[str] = frozenset()
        self._buffer_from = 0
        self._watching = 0  # open watchers: with none, new events are not read at all
        self._queue_events = queue_events
        self._subscriptions: set[Subscription] = set()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Written to by stop(): wakes the PostgreSQL LISTEN loop out of its select() at once, so
        # that a stop (a deploy, a SIGTERM) does not wait out the select's timeout.
        self._wake_read, self._wake_write = -1, -1
        event.listen(sessions, "after_commit", self._after_commit)

    def start(self) -> None:
        with self._sessions() as session:
            self._known = self._loaded = self._buffer_from = events.bounds(session)[0]
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
            subscriptions = list(self._subscriptions)
        _wake(subscriptions)
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

    @contextmanager
    def subscribe(self, wanted: Filter) -> Iterator[Subscription]:
        """A queue of every load after the hub's newest id now (`Subscription.start`), filtered;
        what came before that the caller reads with `since` or from the database."""
        loop = asyncio.get_running_loop()
        with self._changed:
            subscription = Subscription(wanted, self._loaded, self._queue_events, loop)
            self._subscriptions.add(subscription)
            reading = _types(self._subscriptions)
            if not _covers(self._reading, reading):  # the buffer lacks the new types
                self._buffer.clear()
                self._buffer_from = self._loaded
            self._reading = reading
        try:
            yield subscription
        finally:
            with self._changed:
                self._subscriptions.discard(subscription)
                self._reading = _types(self._subscriptions)  # fewer: the buffer still covers

    def since(self, cursor: int) -> tuple[list[Committed], int] | None:
        """The buffered events after `cursor` (of the types subscriptions want: the caller's
        among them once it subscribed) and the id they run to; None if `cursor` is before what
        the buffer holds (the caller reads the database)."""
        with self._changed:
            if self._loaded <= cursor:
                return [], cursor
            if cursor < self._buffer_from:
                return None
            return [item for item in self._buffer if item.id > cursor], self._loaded

    def wait(self, cursor: int, timeout: float) -> None:
        """Until events after `cursor` are loaded, or for `timeout` seconds."""
        with self._changed:
            self._changed.wait_for(lambda: self._loaded > cursor or self.stopping, timeout)

    def _after_commit(self, session: Session) -> None:
        last_id = session.info.pop(events.LAST_ID, 0)
        if last_id:
            self.advance(last_id)

    def _read(self) -> None:
        """Load committed events into the buffer as they become known, in id order."""
        started = 0.0
        while not self.stopping:
            self._stopping.wait(max(0.0, started + self._batch_seconds - time.monotonic()))
            with self._changed:
                self._changed.wait_for(lambda: self._known > self._loaded or self.stopping, 1.0)
                start, target, types = self._loaded, self._known, self._reading
                if target > start and not self._watching:  # nobody to read them for
                    self._buffer.clear()
                    self._loaded = self._buffer_from = target
                    continue
            if target <= start:
                continue
            started = time.monotonic()
            try:
                with self._sessions() as session:
                    rows = events.read(session, start, target, Filter(types), _READ_BATCH)
                    loaded = [committed(row) for row in rows]
            except Exception as error:  # the database may be away: try again shortly
                log.warning("reading new events failed", extra={"error": _name(error)})
                self._stopping.wait(1.0)
                continue
            with self._changed:
                # A stream that subscribed during the read for types it did not read, and
                # resumed from past where the read started (from now on, say): read again.
                if not _covers(types, self._reading):
                    continue
                self._buffer.extend(loaded)
                if len(self._buffer) == self._capacity:  # the oldest may have gone
                    self._buffer_from = max(self._buffer_from, self._buffer[0].id - 1)
                full = len(loaded) == _READ_BATCH
                self._loaded = loaded[-1].id if full else target
                self._changed.notify_all()
                # Taken with the new _loaded: a stream subscribing later starts after this load.
                subscriptions = list(self._subscriptions)
                through = self._loaded
            self._fan_out(subscriptions, start, through, loaded)

    def _fan_out(
        self, subscriptions: list[Subscription], after: int, through: int, loaded: list[Committed]
    ) -> None:
        """Each subscription gets the load filtered by its filter, filtered once per filter (100
        streams following the same events cost one pass); a stream none of it matches is not
        woken at all."""
        by_filter: dict[Filter, Load] = {}
        woken: list[Subscription] = []
        for subscription in subscriptions:
            load = by_filter.get(subscription.wanted)
            if load is None:
                wanted = subscription.wanted
                load = by_filter[wanted] = Load(
                    after, through, [item for item in loaded if matches(item, wanted)]
                )
            if load.items:
                subscription.put(load)
                woken.append(subscription)
        _wake(woken)

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


def _wake(subscriptions: list[Subscription]) -> None:
    """Wake `subscriptions` (from any thread): one call into each event loop they wait on, once
    every queue is filled, however many streams wait there."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
    for subscription in subscriptions:
        by_loop.setdefault(subscription.loop, []).append(subscription)
    for loop, waiting in by_loop.items():
        try:
            loop.call_soon_threadsafe(_wake_on_loop, waiting)
        except RuntimeError:  # the loop is closed: nobody waits there any more
            pass


def _wake_on_loop(subscriptions: list[Subscription]) -> None:
    for subscription in subscriptions:
        subscription.wake()


def _types(subscriptions: set[Subscription]) -> frozenset[str]:
    """The event types `subscriptions` want between them (empty: every type)."""
    wanted: set[str] = set()
    for subscription in subscriptions:
        if not subscription.wanted.types:
            return frozenset()
        wanted |= subscription.wanted.types
    return frozenset(wanted)


def _covers(reading: frozenset[str], wanted: frozenset[str]) -> bool:
    """Whether reading `reading` types (empty: every type) gets every event of `wanted`."""
    return not reading or bool(wanted) and wanted <= reading


def _name(error: Exception) -> str:
    """What failed, without a traceback (the database being away is expected now and then)."""
    return type(getattr(error, "orig", None) or error).__name__
