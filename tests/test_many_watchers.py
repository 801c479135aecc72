"""100 WatchEvents streams at once, while messages are handled: every stream gets every event its
filter matches, once each, in commit order, and message handling still answers (the streams do
not take its worker threads)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any, TypeVar

import grpc
import pytest
from sqlalchemy.orm import Session, sessionmaker

from flowsvc.server import Server
from flowsvc.service.event_feed import EventFeed
from flowsvc.service.event_hub import Committed, EventHub
from flowsvc.store import events
from flowsvc.store.db import create_db_engine, create_sessionmaker
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.test_events import Watcher, listed, wait_until

pytestmark = pytest.mark.usefixtures("seeded")

T = flow_pb2.EventType
Result = TypeVar("Result")
WATCHERS = 100  # the default FLOWSVC_EVENT_MAX_WATCHERS: every slot taken
CUSTOMERS = 6


@pytest.fixture
def channels(flowsvc: Server) -> Iterator[list[grpc.Channel]]:
    """A few connections, as many services watching would open."""
    opened = [grpc.insecure_channel(f"127.0.0.1:{flowsvc.port}") for _ in range(4)]
    yield opened
    for channel in opened:
        channel.close()


def converse(stub: flow_pb2_grpc.FlowServiceStub, phone_number: str) -> None:
    """A customer opens the main menu, picks an entry, goes back and leaves."""
    chat = Chat(stub, phone_number=phone_number)
    for text in ("hi", "1", "menu", "cancel"):
        chat.say(text)


def test_a_hundred_watchers_each_get_every_event_in_order_while_messages_are_handled(
    stub: flow_pb2_grpc.FlowServiceStub, channels: list[grpc.Channel]
) -> None:
    someone = f"1650555{0:04d}"
    filters = [
        flow_pb2.EventFilter(),
        flow_pb2.EventFilter(types=[T.EVENT_TYPE_STEP_ENTERED]),
        flow_pb2.EventFilter(phone_number=someone),
        flow_pb2.EventFilter(
            types=[T.EVENT_TYPE_CONVERSATION_STARTED, T.EVENT_TYPE_MESSAGE_QUEUED]
        ),
    ]
    watchers = [
        Watcher(flow_pb2_grpc.FlowServiceStub(channels[n % len(channels)]), filter=wanted)
        for n in range(WATCHERS)
        for wanted in [filters[n % len(filters)]]
    ]
    try:
        customers = [
            threading.Thread(target=converse, args=(stub, f"1650555{n:04d}"))
            for n in range(CUSTOMERS)
        ]
        for customer in customers:
            customer.start()
        for customer in customers:
            customer.join()

        for n, watcher in enumerate(watchers):
            expected = listed(stub, filter=filters[n % len(filters)])
            assert expected  # every filter matches something
            seen = watcher.wait_for(len(expected))
            assert [e.id for e in seen] == [e.id for e in expected]  # each once, in order
            assert seen == expected
            assert watcher.error is None
    finally:
        for watcher in watchers:
            watcher.close()


def test_a_stream_from_now_gets_every_event_committed_once_its_headers_are_in(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    """A caller knows its stream is open when the headers arrive (Watcher waits for them):
    whatever commits from then on reaches it, while events commit all the time."""
    engine = create_db_engine(database_url, pool_size=2)
    sessions = create_sessionmaker(engine)
    stop = threading.Event()

    def commit_events() -> None:
        while not stop.is_set():
            with sessions.begin() as session:
                events.record(session, [events.Draft("message_read", ("1", "2"))])

    writer = threading.Thread(target=commit_events)
    writer.start()
    opened: list[tuple[Watcher, int]] = []
    try:
        for _ in range(40):
            watcher = Watcher(stub)
            opened.append((watcher, newest(sessions)))
    finally:
        stop.set()
        writer.join()
    try:
        last = newest(sessions)
        for watcher, known in opened:
            wait_until(lambda seen=watcher.seen: bool(seen) and seen[-1].id >= last)
            ids = [e.id for e in watcher.seen]
            assert ids[0] <= known + 1, "events committed after the headers were missed"
            assert ids == list(range(ids[0], last + 1))  # each once, in order, none missing
    finally:
        for watcher, _ in opened:
            watcher.close()
        engine.dispose()


def newest(sessions: sessionmaker[Session]) -> int:
    """The newest committed event's id."""
    with sessions() as session:
        return events.bounds(session)[0]


class Stream:
    """EventFeed.watching driven from the test's thread, a batch per `next`: the feed runs on an
    event loop of its own, as it does in the server. Open (its start settled) once made."""

    def __init__(self, feed: EventFeed, after_id: int | None, wanted: events.Filter) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._open = AsyncExitStack()
        self._batches = self._on_loop(
            self._open.enter_async_context(feed.watching(after_id, wanted))
        )

    def __next__(self) -> list[Committed]:
        return self._on_loop(self._batches.__anext__())

    def close(self) -> None:
        self._on_loop(self._open.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _on_loop(self, work: Coroutine[Any, Any, Result]) -> Result:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout=30)


@contextmanager
def running_hub(
    database_url: str, **options: Any
) -> Iterator[tuple[sessionmaker[Session], EventHub]]:
    """An event hub started on the test database, with the sessions that write its events."""
    engine = create_db_engine(database_url, pool_size=4)
    sessions = create_sessionmaker(engine)
    events.attach(sessions)
    hub = EventHub(sessions, **options)
    hub.start()
    try:
        yield sessions, hub
    finally:
        hub.stop()
        engine.dispose()


def test_a_watcher_too_slow_for_its_queue_still_gets_every_event_once_in_order(
    database_url: str,
) -> None:
    """A stream that has not taken what the hub pushed while many events committed overflows its
    queue (here 3 events) and catches up from where it was, missing and repeating nothing."""
    customer = ("1", "2")
    with running_hub(database_url, queue_events=3) as (sessions, hub):

        def commit(count: int) -> int:
            with sessions() as session:
                with session.begin():
                    events.record(session, [events.Draft("message_sent", customer)] * count)
                with session.begin():
                    return events.bounds(session)[0]

        first = commit(1)
        stream = Stream(EventFeed(sessions, hub), first - 1, events.Filter())
        seen = [item.id for item in next(stream)]  # subscribed; this response not yet sent
        assert seen == [first]
        for _ in range(10):
            last = commit(2)
        hub.wait(last - 1, 10.0)  # until the hub has loaded (and pushed) them all
        while seen[-1] < last:
            seen += [item.id for item in next(stream)]
        assert seen == list(range(first, last + 1))
        stream.close()


def test_a_stream_sends_at_most_one_response_per_batch_interval_however_often_events_commit(
    database_url: str,
) -> None:
    """FLOWSVC_EVENT_BATCH_MS: events committed one at a time, far more often than the interval,
    reach the stream together, every one once and in order, in about one response per interval."""
    customer = ("1", "2")
    with running_hub(database_url, batch_seconds=0.2) as (sessions, hub):

        def commit() -> None:
            for _ in range(30):
                with sessions() as session, session.begin():
                    events.record(session, [events.Draft("message_sent", customer)])
                time.sleep(0.01)

        with sessions() as session:
            with session.begin():
                events.record(session, [events.Draft("message_sent", customer)])
            with session.begin():
                first = events.bounds(session)[0] + 1
        stream = Stream(EventFeed(sessions, hub), first - 1, events.Filter())
        committing = threading.Thread(target=commit)
        started = time.monotonic()
        committing.start()
        seen: list[int] = []
        responses = 0
        while len(seen) < 30:
            seen += [item.id for item in next(stream)]
            responses += 1
        elapsed = time.monotonic() - started
        committing.join()
        stream.close()
        assert seen == list(range(first, first + 30))
        assert responses <= elapsed / 0.2 + 2  # not one per commit (30)


def test_streams_that_want_types_the_hub_does_not_read_yet_get_every_event_once_in_order(
    database_url: str,
) -> None:
    """The hub reads only the event types its streams want. A stream opened later for other types
    (each opening here widens what the hub reads, while events of every type commit) resumes from
    before it opened and gets every event of its types once, in order, as the database has them."""
    customer = ("1", "2")
    kinds = ["message_sent", "message_queued", "flow_completed", "conversation_started"]
    with running_hub(database_url, batch_seconds=0) as (sessions, hub):
        feed = EventFeed(sessions, hub)

        def in_database(wanted: events.Filter, after: int, through: int) -> list[int]:
            with sessions() as session:
                return [row.id for row in events.read(session, after, through, wanted, 10_000)]

        stopping = threading.Event()

        def commit() -> None:
            while not stopping.is_set():
                with sessions() as session, session.begin():
                    drafts = [events.Draft(kind, customer) for kind in ["step_entered", *kinds]]
                    events.record(session, drafts)
                time.sleep(0.002)

        entered = events.Filter(types=frozenset({"step_entered"}))
        following = Stream(feed, None, entered)
        committing = threading.Thread(target=commit)
        committing.start()
        try:
            next(following)  # the hub now reads step entries only
            for round in range(60):
                wanted = events.Filter(types=frozenset({kinds[round % len(kinds)]}))
                if round % 5 == 4:
                    wanted = events.Filter()  # every type
                # From the newest committed (often past what the hub has read), or from before.
                opened_after = max(0, newest(sessions) - (round % 2) * 3 * (len(kinds) + 1))
                stream = Stream(feed, opened_after, wanted)
                seen = [item.id for item in next(stream)]
                through = newest(sessions)
                while seen[-1] < through:
                    seen += [item.id for item in next(stream)]
                stream.close()
                expected = in_database(wanted, opened_after, seen[-1])
                assert seen == expected, f"round {round}, {wanted}"
            seen = [item.id for item in next(following)]
            assert seen == in_database(entered, seen[0] - 1, seen[-1])
        finally:
            stopping.set()
            committing.join()
            following.close()
