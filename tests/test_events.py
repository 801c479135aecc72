"""Events over gRPC: what each change writes, in commit order, resumable by id, filtered; nothing
for what rolled back; OUT_OF_RANGE past retention; a second flowsvc hears of the first's commits
(NOTIFY on PostgreSQL, polling on SQLite)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowsvc.clock import utcnow
from flowsvc.server import Server
from flowsvc.service.retention import Retention
from flowsvc.settings import Settings
from flowsvc.store import events
from flowsvc.store.db import create_db_engine, create_sessionmaker
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute
from tests.servers import running_flowsvc
from tests.steering import create_pay_order, struct

pytestmark = pytest.mark.usefixtures("seeded")

T = flow_pb2.EventType


def listed(stub: flow_pb2_grpc.FlowServiceStub, **request: Any) -> list[flow_pb2.Event]:
    """Every event ListEvents gives, page after page."""
    found: list[flow_pb2.Event] = []
    token = ""
    while True:
        page = stub.ListEvents(flow_pb2.ListEventsRequest(page_token=token, **request))
        found += page.events
        token = page.next_page_token
        if not token:
            return found


def kinds(found: list[flow_pb2.Event]) -> list[str]:
    return [T.Name(e.type).removeprefix("EVENT_TYPE_") for e in found]


def payload(event: flow_pb2.Event) -> dict[str, Any]:
    field = event.WhichOneof("payload")
    assert field is not None
    return json_format.MessageToDict(getattr(event, field), preserving_proto_field_name=True)


class Watcher:
    """A WatchEvents stream read on a thread of its own; wait_for polls what arrived."""

    def __init__(self, stub: flow_pb2_grpc.FlowServiceStub, **request: Any) -> None:
        self.stream = stub.WatchEvents(flow_pb2.WatchEventsRequest(**request))
        self.seen: list[flow_pb2.Event] = []
        self.error: grpc.RpcError | None = None
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        self.stream.initial_metadata()  # the stream is open: events from now on reach it

    def _read(self) -> None:
        try:
            for response in self.stream:
                self.seen.extend(response.events)
        except grpc.RpcError as error:
            self.error = error

    def wait_for(self, count: int, timeout: float = 20.0) -> list[flow_pb2.Event]:
        deadline = time.monotonic() + timeout
        while len(self.seen) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.seen) >= count, (kinds(self.seen), self.error)
        return list(self.seen)

    def close(self) -> None:
        self.stream.cancel()
        self.thread.join(timeout=10)


@pytest.fixture
def watchers(stub: flow_pb2_grpc.FlowServiceStub) -> Iterator[list[Watcher]]:
    opened: list[Watcher] = []
    yield opened
    for watcher in opened:
        watcher.close()


def paid_order(stub: flow_pb2_grpc.FlowServiceStub) -> Chat:
    """The payment example: the customer writes, a service starts pay_order, the customer taps
    Pay, the payment service marks it paid (the flow completes)."""
    create_pay_order(stub)
    chat = Chat(stub)
    chat.say("hi")
    stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat.customer,
            template_name="pay_order",
            context=struct({"item": "2 x Coffee", "total": "7.00"}),
        )
    )
    chat.tap("pay", "💳 Pay")
    stub.UpdateConversation(
        flow_pb2.UpdateConversationRequest(
            customer=chat.customer, context=struct({"paid": True}), step="paid"
        )
    )
    return chat


def test_a_conversation_tells_its_story_in_commit_order(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = paid_order(stub)

    found = listed(stub)

    assert [e.id for e in found] == list(range(1, len(found) + 1))  # no gaps, in order
    story = [k for k in kinds(found) if k != "MESSAGE_QUEUED"]
    assert story == [
        "CONVERSATION_STARTED",  # "hi": the main menu
        "STEP_ENTERED",
        "CONVERSATION_ENDED",  # replaced by StartConversation
        "CONVERSATION_STARTED",
        "STEP_ENTERED",
        "STEP_ENTERED",  # Pay tapped
        "CONVERSATION_UPDATED",  # paid
        "FLOW_COMPLETED",
    ]
    assert all(e.customer == chat.customer for e in found)
    by_kind = {k: e for k, e in zip(kinds(found), found, strict=True)}
    started = [e for e in found if e.type == T.EVENT_TYPE_CONVERSATION_STARTED]
    assert payload(started[0]) == {"step": "initial"}  # the customer's (False is not shown)
    assert payload(started[1]) == {"step": "initial", "business_initiated": True}
    tapped = [e for e in found if e.type == T.EVENT_TYPE_STEP_ENTERED][-1]
    assert payload(tapped) | {"source_id": ""} == {
        "step": "awaiting_payment",
        "previous_step": "initial",
        "input": "pay",
        "source_id": "",
    }
    assert tapped.template_name == "pay_order" and tapped.template_version == 1
    completed = by_kind["FLOW_COMPLETED"]
    result = stub.GetResult(
        flow_pb2.GetResultRequest(reference=completed.flow_completed.reference)
    ).result
    assert completed.flow_completed.result == result.context
    assert completed.flow_completed.result["paid"] is True
    queued = [e for e in found if e.type == T.EVENT_TYPE_MESSAGE_QUEUED]
    assert queued and all(e.message_queued.outbox_id > 0 for e in queued)
    assert all(e.create_time.seconds > 0 for e in found)


def test_a_watcher_resumes_after_the_last_id_it_saw_and_follows_live(
    stub: flow_pb2_grpc.FlowServiceStub, watchers: list[Watcher]
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    before = listed(stub)
    middle = before[len(before) // 2].id

    watcher = Watcher(stub, after_id=middle)
    watchers.append(watcher)
    chat.say("menu")
    after = listed(stub)

    expected = [e for e in after if e.id > middle]
    assert len(expected) > len(after) - len(before)
    assert watcher.wait_for(len(expected)) == expected


def test_a_watcher_from_now_sees_only_new_events_and_filters_them(
    stub: flow_pb2_grpc.FlowServiceStub, watchers: list[Watcher]
) -> None:
    other = Chat(stub, phone_number="16505550000")
    other.say("hi")
    chat = Chat(stub)
    completions = Watcher(stub, filter=flow_pb2.EventFilter(types=[T.EVENT_TYPE_FLOW_COMPLETED]))
    mine = Watcher(stub, filter=flow_pb2.EventFilter(phone_number=chat.phone_number))
    pay_orders = Watcher(stub, filter=flow_pb2.EventFilter(template_name="pay_order"))
    watchers += [completions, mine, pay_orders]

    paid_order(stub)
    other.say("menu")
    everything = listed(stub)

    assert completions.wait_for(1)[0].type == T.EVENT_TYPE_FLOW_COMPLETED
    mine_expected = [e for e in everything if e.customer.phone_number == chat.phone_number]
    assert mine.wait_for(len(mine_expected)) == mine_expected
    pay_expected = [e for e in everything if e.template_name == "pay_order"]
    assert pay_orders.wait_for(len(pay_expected)) == pay_expected
    assert listed(stub, filter=flow_pb2.EventFilter(template_name="pay_order")) == pay_expected
    assert len(completions.seen) == 1


def test_rpcs_outside_turns_write_theirs(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    ended, expired, ignored = (Chat(stub, phone_number=f"1650555000{n}") for n in range(3))
    ended.say("hi")
    expired.say("hi")
    stub.EndConversation(flow_pb2.EndConversationRequest(customer=ended.customer))
    execute(
        database_url,
        "UPDATE conversation_state SET expires_at = :past WHERE phone_number = :number",
        past=datetime.now(UTC) - timedelta(hours=1),
        number=expired.phone_number,
    )
    stub.SweepExpired(flow_pb2.SweepExpiredRequest())
    ignored.send(ignored.message(unsupported_type="reaction"))

    found = listed(
        stub,
        filter=flow_pb2.EventFilter(
            types=[
                T.EVENT_TYPE_CONVERSATION_ENDED,
                T.EVENT_TYPE_CONVERSATION_EXPIRED,
                T.EVENT_TYPE_INBOUND_UNHANDLED,
            ]
        ),
    )

    assert [(e.customer.phone_number, kinds([e])[0]) for e in found] == [
        (ended.phone_number, "CONVERSATION_ENDED"),
        (expired.phone_number, "CONVERSATION_EXPIRED"),
        (ignored.phone_number, "INBOUND_UNHANDLED"),
    ]
    assert payload(found[0])["reason"] == "EndConversation"
    assert payload(found[1]) == {"step": "initial", "reason": "swept"}
    assert found[1].template_name == "main_menu"
    assert found[2].inbound_unhandled.outcome == flow_pb2.OUTCOME_IGNORED


def test_sends_acks_and_statuses_write_message_events(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    claimed = stub.ClaimOutbox(flow_pb2.ClaimOutboxRequest(owner="sender")).messages
    first, second = claimed[0].id, claimed[1].id
    stub.AckOutbox(
        flow_pb2.AckOutboxRequest(
            owner="sender",
            acks=[
                flow_pb2.OutboxAck(id=first, sent_wa_message_id="wamid.A1"),
                flow_pb2.OutboxAck(
                    id=second,
                    failed=flow_pb2.MetaError(code=131047, title="Re-engagement"),
                ),
                *[
                    flow_pb2.OutboxAck(id=m.id, sent_wa_message_id=f"wamid.B{m.id}")
                    for m in claimed[2:]
                ],
            ],
        )
    )
    for status in (flow_pb2.DELIVERY_STATUS_DELIVERED, flow_pb2.DELIVERY_STATUS_READ):
        stub.RecordStatus(flow_pb2.RecordStatusRequest(wa_message_id="wamid.A1", status=status))
    stub.RecordStatus(
        flow_pb2.RecordStatusRequest(
            wa_message_id="wamid.A1", status=flow_pb2.DELIVERY_STATUS_DELIVERED
        )
    )

    found = listed(
        stub,
        filter=flow_pb2.EventFilter(
            types=[
                T.EVENT_TYPE_MESSAGE_SENT,
                T.EVENT_TYPE_MESSAGE_FAILED,
                T.EVENT_TYPE_MESSAGE_DELIVERED,
                T.EVENT_TYPE_MESSAGE_READ,
            ]
        ),
    )

    ours = [e for e in found if payload(e)["outbox_id"] in (str(first), str(second))]
    assert [(kinds([e])[0], payload(e)) for e in ours] == [
        ("MESSAGE_SENT", {"outbox_id": str(first), "wa_message_id": "wamid.A1"}),
        (
            "MESSAGE_FAILED",
            {"outbox_id": str(second), "error_code": 131047, "error_title": "Re-engagement"},
        ),
        ("MESSAGE_DELIVERED", {"outbox_id": str(first), "wa_message_id": "wamid.A1"}),
        ("MESSAGE_READ", {"outbox_id": str(first), "wa_message_id": "wamid.A1"}),
    ]  # the status that would move backwards wrote nothing


def test_a_transaction_that_rolls_back_writes_no_event(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=1)
    sessions = create_sessionmaker(engine)
    draft = events.Draft("message_sent", ("1", "2"), payload={"outbox_id": 1})
    try:
        with pytest.raises(RuntimeError), sessions.begin() as session:
            events.record(session, [draft, draft])
            raise RuntimeError("the change fails")
        with sessions.begin() as session:
            events.record(session, [draft])
        with sessions() as session:
            assert events.bounds(session) == (1, 0)
            assert [e.id for e in events.read(session, 0, 10, events.Filter(), 10)] == [1]
    finally:
        engine.dispose()


def test_a_batch_names_each_queued_reply_by_its_outbox_id(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    """HandleMessages with several customers, one of them twice (two rounds in the transaction):
    every reply the response returns has its message_queued event naming its outbox id, in
    order, and the batch's events have consecutive ids."""
    chats = [Chat(stub, phone_number=f"1650555200{n}") for n in range(3)]
    before = listed(stub)
    last = before[-1].id if before else 0
    messages = [c.message(text="hi") for c in chats] + [chats[0].message(text="hi")]
    response = stub.HandleMessages(flow_pb2.HandleMessagesRequest(messages=messages))

    found = [e for e in listed(stub) if e.id > last]
    replies = [m for r in response.results for m in r.handled.messages]
    queued = [e for e in found if e.type == T.EVENT_TYPE_MESSAGE_QUEUED]
    assert len(replies) >= 4
    assert sorted(e.message_queued.outbox_id for e in queued) == sorted(m.id for m in replies)
    for chat in chats:
        theirs = [
            m.id
            for r in response.results
            for m in r.handled.messages
            if r.handled.messages and m.customer.phone_number == chat.phone_number
        ]
        events_of = [
            e.message_queued.outbox_id
            for e in queued
            if e.customer.phone_number == chat.phone_number
        ]
        assert events_of == theirs
    assert [e.id for e in found] == list(range(last + 1, last + 1 + len(found)))


def test_a_batch_that_fails_once_writes_each_event_once(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    """One bad message rolls the batch's transaction back; the messages are then handled one by
    one, and only those commits' events exist."""
    good = [Chat(stub, phone_number=f"1650555100{n}") for n in range(3)]
    bad = Chat(stub, phone_number="16505551009")
    huge = "x" * 20_000  # past FLOWSVC_MAX_CONTEXT_BYTES once stored: fails in the transaction
    bad.say("hi")
    bad.tap("new_order")
    before = listed(stub)

    response = stub.HandleMessages(
        flow_pb2.HandleMessagesRequest(
            messages=[c.message(text="hi") for c in good] + [bad.message(text=huge)]
        )
    )

    found = [e for e in listed(stub) if e.id > before[-1].id]
    assert [r.WhichOneof("result") for r in response.results][:3] == ["handled"] * 3
    started = [e for e in found if e.type == T.EVENT_TYPE_CONVERSATION_STARTED]
    assert sorted(e.customer.phone_number for e in started) == [c.phone_number for c in good]
    assert [e.id for e in found] == list(range(before[-1].id + 1, before[-1].id + 1 + len(found)))


def out_of_range(error: grpc.RpcError) -> str:
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    request = error_details_pb2.BadRequest()
    status.details[0].Unpack(request)
    assert request.field_violations[0].field == "after_id"
    return request.field_violations[0].description  # type: ignore[no-any-return]


def test_resuming_past_retention_is_out_of_range_not_a_silent_gap(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    Chat(stub).say("hi")
    old = listed(stub)
    engine = create_db_engine(database_url, pool_size=1)
    try:
        later = lambda: datetime.now(UTC) + timedelta(days=8)  # noqa: E731
        purged = Retention(
            create_sessionmaker(engine), None, keep_events=timedelta(days=7), clock=later
        ).sweep()
    finally:
        engine.dispose()
    assert purged.events == len(old)
    Chat(stub, phone_number="16505550001").say("hi")

    with pytest.raises(grpc.RpcError) as caught:
        stub.ListEvents(flow_pb2.ListEventsRequest(after_id=old[0].id))
    why = out_of_range(caught.value)
    assert f"the oldest kept is {old[-1].id + 1}" in why
    with pytest.raises(grpc.RpcError) as caught:
        next(iter(stub.WatchEvents(flow_pb2.WatchEventsRequest(after_id=old[0].id), timeout=10)))
    assert "deleted by retention" in out_of_range(caught.value)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListEvents(flow_pb2.ListEventsRequest(after_id=10_000))
    assert "past the newest event" in out_of_range(caught.value)
    # From the last one retention deleted (or from 0: the oldest kept) nothing is missed.
    assert listed(stub, after_id=old[-1].id) == listed(stub)
    assert listed(stub)[0].id == old[-1].id + 1


def test_a_second_flowsvc_hears_of_the_first_ones_commits(
    stub: flow_pb2_grpc.FlowServiceStub, settings: Settings, watchers: list[Watcher]
) -> None:
    with running_flowsvc(replace(settings, event_poll_seconds=0.05)) as second:
        with grpc.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            watcher = Watcher(flow_pb2_grpc.FlowServiceStub(channel))
            Chat(stub).say("hi")  # through the first flowsvc
            expected = listed(stub)
            assert watcher.wait_for(len(expected)) == expected
            watcher.close()


def test_too_many_watchers_are_refused(settings: Settings, watchers: list[Watcher]) -> None:
    with running_flowsvc(replace(settings, event_max_watchers=1)) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = flow_pb2_grpc.FlowServiceStub(channel)
            first = Watcher(stub)
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(stub.WatchEvents(flow_pb2.WatchEventsRequest(), timeout=10)))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            # Other calls still answer.
            assert stub.ListEvents(flow_pb2.ListEventsRequest()).last_id == 0
            first.close()
            # The closed stream's place is free again once flowsvc hears of the cancel.
            deadline = time.monotonic() + 10
            while True:
                second = Watcher(stub)
                second.thread.join(timeout=0.5)  # a refused stream ends; an accepted one stays open
                if second.thread.is_alive():
                    break
                assert second.error is not None
                assert second.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert time.monotonic() < deadline, "the closed stream still holds its place"
            Chat(stub).say("hi")
            assert second.wait_for(1)
            second.close()


def test_flowsvc_stops_promptly_with_watchers_open(settings: Settings) -> None:
    server: Server
    with running_flowsvc(settings) as server:
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        Watcher(flow_pb2_grpc.FlowServiceStub(channel))
    channel.close()


def test_ids_follow_commit_order_when_transactions_overlap(database_url: str) -> None:
    """Two transactions overlap; the one that writes its events first holds their ids until it
    commits, and the other, committing meanwhile, waits and takes the next ids: a reader never
    sees a later id before an earlier one commits (as a sequence would allow)."""
    engine = create_db_engine(database_url, pool_size=4)
    sessions = create_sessionmaker(engine)
    customer = ("1", "2")
    try:
        first = sessions()
        first.begin()
        events.write(first.connection(), [events.Draft("message_sent", customer)], utcnow())
        committed = threading.Event()

        def second() -> None:
            with sessions.begin() as session:
                events.record(session, [events.Draft("message_read", customer)])
            committed.set()

        thread = threading.Thread(target=second)
        thread.start()
        if engine.dialect.name == "postgresql":  # SQLite: the second waits for BEGIN, readers too
            wait_until(lambda: waiting_for_a_lock(engine))
            with sessions() as reader:
                assert events.bounds(reader) == (0, 0)  # neither is visible yet
        assert not committed.is_set()
        first.commit()
        first.close()
        thread.join(timeout=30)
        assert committed.is_set()
        with sessions() as reader:
            found = events.read(reader, 0, 10, events.Filter(), 10)
        assert [(e.id, e.type) for e in found] == [(1, "message_sent"), (2, "message_read")]
    finally:
        engine.dispose()


def wait_until(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def waiting_for_a_lock(engine: Any) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar()
        )
