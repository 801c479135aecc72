"""Retention: finished results and sent or failed outbox messages past FLOWSVC_RETENTION_DAYS are
deleted by SweepExpired and the periodic sweeper; younger rows and pending messages are kept."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import text

from flowsvc.service.retention import Retention
from flowsvc.settings import Settings
from flowsvc.store.db import create_db_engine, create_sessionmaker
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute, row_counts
from tests.servers import running_flowsvc

pytestmark = pytest.mark.usefixtures("seeded")

OLD, YOUNG = "15550000001", "15550000002"
LONG_AGO = "2020-01-01 00:00:00"


def order_a_coffee(stub: flow_pb2_grpc.FlowServiceStub, phone_number: str) -> str:
    chat = Chat(stub, phone_number)
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("coffee", "Coffee")
    chat.say("2")
    chat.tap("pickup")
    chat.tap("yes")
    assert chat.last is not None and chat.last.outcome == flow_pb2.OUTCOME_COMPLETED
    results = stub.ListResults(flow_pb2.ListResultsRequest(customer=chat.customer)).results
    return results[0].reference


def outbox_rows(url: str) -> list[tuple[int, str, str]]:
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, phone_number, state FROM outbox ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    return [(row[0], row[1], row[2]) for row in rows]


def age_the_old_customer(url: str) -> tuple[int, int, set[int]]:
    """The old customer's result and messages are from 2020: one sent, one failed, the rest
    never sent. The young customer's messages were all sent just now."""
    execute(
        url, "UPDATE flow_results SET created_at = :t WHERE phone_number = :p", t=LONG_AGO, p=OLD
    )
    ids = [row[0] for row in outbox_rows(url) if row[1] == OLD]
    sent, failed, *pending = ids
    execute(url, "UPDATE outbox SET updated_at = :t WHERE phone_number = :p", t=LONG_AGO, p=OLD)
    execute(url, "UPDATE outbox SET state = 'sent' WHERE id = :id", id=sent)
    execute(url, "UPDATE outbox SET state = 'failed' WHERE id = :id", id=failed)
    execute(url, "UPDATE outbox SET state = 'sent' WHERE phone_number = :p", p=YOUNG)
    return sent, failed, set(pending)


def test_sweep_deletes_old_results_and_finished_messages_and_keeps_the_rest(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    old_reference = order_a_coffee(stub, OLD)
    young_reference = order_a_coffee(stub, YOUNG)
    sent, failed, pending = age_the_old_customer(database_url)
    young_messages = {row[0] for row in outbox_rows(database_url) if row[1] == YOUNG}

    swept = stub.SweepExpired(flow_pb2.SweepExpiredRequest())

    assert (swept.results, swept.outbox_messages) == (1, 2)
    left = {row[0] for row in outbox_rows(database_url)}
    assert sent not in left and failed not in left
    assert pending and pending <= left  # never sent: a customer is still owed them
    assert young_messages <= left
    assert stub.GetResult(flow_pb2.GetResultRequest(reference=young_reference)).result
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetResult(flow_pb2.GetResultRequest(reference=old_reference))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    again = stub.SweepExpired(flow_pb2.SweepExpiredRequest())
    assert (again.results, again.outbox_messages) == (0, 0)


def test_retention_zero_keeps_everything(settings: Settings, database_url: str) -> None:
    with running_flowsvc(replace(settings, retention=None)) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = flow_pb2_grpc.FlowServiceStub(channel)
            order_a_coffee(stub, OLD)
            order_a_coffee(stub, YOUNG)
            age_the_old_customer(database_url)
            before = row_counts(database_url)
            swept = stub.SweepExpired(flow_pb2.SweepExpiredRequest())
    assert (swept.results, swept.outbox_messages) == (0, 0)
    assert row_counts(database_url) == before


def test_the_periodic_sweeper_applies_retention(settings: Settings, database_url: str) -> None:
    with running_flowsvc(replace(settings, sweep_interval_seconds=0.1)) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            order_a_coffee(flow_pb2_grpc.FlowServiceStub(channel), OLD)
        age_the_old_customer(database_url)
        deadline = time.monotonic() + 20
        while row_counts(database_url)["flow_results"] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert row_counts(database_url)["flow_results"] == 0


def test_a_backlog_is_deleted_in_batches(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    for number in range(5):
        order_a_coffee(stub, f"1555000010{number}")
    execute(database_url, "UPDATE flow_results SET created_at = :t", t=LONG_AGO)
    execute(database_url, "UPDATE outbox SET state = 'sent', updated_at = :t", t=LONG_AGO)
    messages = row_counts(database_url)["outbox"]
    engine = create_db_engine(database_url, pool_size=1)
    try:
        now = datetime.now(UTC)
        retention = Retention(
            create_sessionmaker(engine), timedelta(days=90), batch=2, clock=lambda: now
        )
        purged = retention.sweep()
    finally:
        engine.dispose()
    assert (purged.results, purged.outbox_messages) == (5, messages)
    assert row_counts(database_url)["flow_results"] == row_counts(database_url)["outbox"] == 0


def calls_rows(url: str) -> list[tuple[int, str, str]]:
    engine = create_db_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, phone_number, state FROM calls ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    return [(row[0], row[1], row[2]) for row in rows]


def to_the_address_check(stub: flow_pb2_grpc.FlowServiceStub, phone_number: str) -> Chat:
    """The customer's order waits in the call step: its call to address_check is queued."""
    chat = Chat(stub, phone_number)
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("coffee", "Coffee")
    chat.say("2")
    chat.tap("delivery")
    chat.say("12 Harbour Road")
    assert chat.last is not None and chat.last.conversation.current_step == "check_address"
    return chat


def answer_the_call(stub: flow_pb2_grpc.FlowServiceStub, phone_number: str) -> None:
    claimed = stub.ClaimCalls(flow_pb2.ClaimCallsRequest(owner="retention-test")).calls
    (call,) = [c for c in claimed if c.customer.phone_number == phone_number]
    stub.FinishCall(
        flow_pb2.FinishCallRequest(
            call_id=call.id, kind=flow_pb2.CALL_RESULT_KIND_ANSWERED, status_code=200, body="{}"
        )
    )


def test_sweep_deletes_old_finished_calls_and_keeps_pending_and_young_ones(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    old = to_the_address_check(stub, OLD)
    answer_the_call(stub, OLD)  # done
    old.say("cancel")
    to_the_address_check(stub, OLD).say("cancel")  # its call stays pending until superseded
    to_the_address_check(stub, OLD)  # supersedes it; this one is still pending
    to_the_address_check(stub, YOUNG)
    answer_the_call(stub, YOUNG)  # done, just now
    execute(
        database_url, "UPDATE calls SET updated_at = :t WHERE phone_number = :p", t=LONG_AGO, p=OLD
    )
    before = calls_rows(database_url)
    assert [(phone, state) for _, phone, state in before] == [
        (OLD, "done"),
        (OLD, "superseded"),
        (OLD, "pending"),
        (YOUNG, "done"),
    ]

    swept = stub.SweepExpired(flow_pb2.SweepExpiredRequest())

    assert swept.calls == 2
    assert calls_rows(database_url) == before[2:]  # a pending call is owed a result, however old
    assert stub.SweepExpired(flow_pb2.SweepExpiredRequest()).calls == 0


def test_retention_zero_keeps_finished_calls(settings: Settings, database_url: str) -> None:
    with running_flowsvc(replace(settings, retention=None)) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = flow_pb2_grpc.FlowServiceStub(channel)
            to_the_address_check(stub, OLD)
            answer_the_call(stub, OLD)
            execute(database_url, "UPDATE calls SET updated_at = :t", t=LONG_AGO)
            swept = stub.SweepExpired(flow_pb2.SweepExpiredRequest())
    assert swept.calls == 0
    assert [state for _, _, state in calls_rows(database_url)] == ["done"]
