"""Prepared statements on PostgreSQL (FLOWSVC_DB_PREPARED_STATEMENTS): the same conversation with
them on and off, each prepared once per connection, and still there after a rolled-back turn."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime

import grpc
import pytest
from sqlalchemy import Connection, Engine

from flowsvc.settings import Settings
from flowsvc.store import prepared as prepared_arrays, turn_statements, turns
from flowsvc.store.db import create_db_engine
from flowsvc.store.prepared import _prepared as prepared_form
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.servers import running_flowsvc

pytestmark = [
    pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL"),
    pytest.mark.usefixtures("seeded"),
]
CUSTOMER = ("106540352242922", "16505551234")
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
REFERENCE = re.compile(r"order number is \w+")  # new for every order


def order(stub: flow_pb2_grpc.FlowServiceStub, phone_number: str) -> list[list[str]]:
    """The guide's order walk; what the customer reads after each message."""
    chat = Chat(stub, phone_number=phone_number)
    read = []
    for step in (
        lambda: chat.say("hi"),
        lambda: chat.tap("new_order"),
        lambda: chat.tap("coffee"),
        lambda: chat.say("2"),
        lambda: chat.tap("pickup"),
        lambda: chat.tap("yes"),
    ):
        step()
        read.append([REFERENCE.sub("order number is …", text) for text in chat.texts])
    assert chat.last is not None and chat.last.outcome == flow_pb2.OUTCOME_COMPLETED
    return read


def open_one(connection: Connection, message_id: str) -> turns.Opened:
    [opened] = turns.lock_and_read(connection, [turns.Opening(CUSTOMER, message_id)], "", NOW)
    return opened


def prepared_names(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.exec_driver_sql("SELECT name FROM pg_prepared_statements").scalars())


def test_an_order_reads_the_same_with_prepared_statements_off(settings: Settings) -> None:
    walks = []
    for prepared in (True, False):
        with (
            running_flowsvc(replace(settings, db_prepared_statements=prepared)) as server,
            grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
        ):
            walks.append(order(flow_pb2_grpc.FlowServiceStub(channel), f"1650555000{prepared:d}"))
    assert walks[0] == walks[1]


def test_a_connection_prepares_each_statement_once(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=1)  # one connection: every turn reuses it
    try:
        with engine.begin() as connection:
            open_one(connection, "wamid.P1")
        first = prepared_names(engine)
        with engine.begin() as connection:
            open_one(connection, "wamid.P2")
        assert len(first) == 2 and prepared_names(engine) == first
    finally:
        engine.dispose()


def test_a_rolled_back_turn_leaves_the_statements_prepared(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            open_one(connection, "wamid.P1")
            connection.rollback()
            opened = open_one(connection, "wamid.P2")
        assert opened.prior_outcome is None and opened.state is None
        assert len(prepared_names(engine)) == 2
    finally:
        engine.dispose()


def test_prepared_statements_are_still_planned_for_each_executions_values(
    database_url: str,
) -> None:
    """A plan cached while the outbox was empty kept scanning every customer's pending replies
    through the wrong index once it had grown (PostgreSQL CPU per message doubled in a minute)."""
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            mode = connection.exec_driver_sql("SHOW plan_cache_mode").scalar()
        assert mode == "force_custom_plan"
    finally:
        engine.dispose()


def test_without_prepared_statements_nothing_is_prepared(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=1, prepared_statements=False)
    try:
        with engine.begin() as connection:
            open_one(connection, "wamid.P1")
        assert prepared_names(engine) == set()
    finally:
        engine.dispose()


@pytest.mark.parametrize("customers", [1, 2], ids=["one_turn", "several_turns"])
def test_the_pending_check_reads_only_the_customers_rows_however_stale_the_statistics(
    database_url: str, customers: int
) -> None:
    """Statistics from an outbox with no pending rows, then a backlog of 5,000 for others: the
    check must still go through the customer's index, not scan every customer's pending rows."""
    customers_ = [(CUSTOMER[0], f"{CUSTOMER[1]}{n}") for n in range(customers)]
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("ANALYZE outbox")
            for n in range(6):  # PostgreSQL considers a generic plan from the sixth execution on
                openings = [turns.Opening(c, f"wamid.P{n}-{c[1]}") for c in customers_]
                turns.lock_and_read(connection, openings, "", NOW)
                connection.rollback()
            connection.exec_driver_sql(
                "INSERT INTO outbox (phone_number_id, phone_number, source_id, body_json, state,"
                " attempts, next_attempt_at, created_at, updated_at) SELECT '1', g::text, 'w',"
                " '{}', 'pending', 0, now(), now(), now() FROM generate_series(1, 5000) AS g"
            )
            parameters = {"lease_owner": "", "now": NOW}
            if customers == 1:
                read = turn_statements.READ
                parameters |= {"phone_number_id": CUSTOMER[0], "phone_number": CUSTOMER[1]}
                parameters |= {"message_id": "wamid.X"}
            else:
                read = turn_statements.READ_MANY
                parameters |= {"phone_number_ids": [c[0] for c in customers_]}
                parameters |= {"phone_numbers": [c[1] for c in customers_]}
                parameters |= {"message_ids": [f"wamid.X{n}" for n in range(customers)]}
            plan = "\n".join(
                connection.exec_driver_sql(
                    "EXPLAIN " + prepared_form(read).execute, parameters
                ).scalars()
            )
            connection.rollback()
        assert "ix_outbox_lane" in plan, plan
    finally:
        engine.dispose()


def test_array_arguments_reach_postgresql_as_the_values_they_are(settings: Settings) -> None:
    """store.prepared's array strings, read by a statement's cast, are the lists psycopg2 would
    have sent element by element: any character in a text, NULLs, times to the microsecond."""
    texts = ['a"b', "c\\d", "{e,f}", "NULL", "", " g ", "h\\\"i'j", "k\nl", "ü €", None]
    ints = [0, -1, 2**40, 7]
    times = [NOW, None, datetime(1999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)]
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            for values, form, cast in (
                (texts, prepared_arrays.texts, "text[]"),
                (ints, prepared_arrays.ints, "bigint[]"),
                (times, prepared_arrays.times, "timestamptz[]"),
                ([], prepared_arrays.texts, "text[]"),
            ):
                row = connection.exec_driver_sql(
                    f"SELECT %(new)s::{cast}, %(old)s::{cast}", {"new": form(values), "old": values}
                ).one()
                assert row[0] == row[1] == values
    finally:
        engine.dispose()
