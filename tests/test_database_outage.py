"""When PostgreSQL cannot be reached, calls fail as UNAVAILABLE (retryable: the gateway answers
Meta non-200 and Meta redelivers), and flowsvc recovers on its own once the database is back."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flowsvc.store.db import normalize_url
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.servers import flowsvc_process, spawn_flowsvc

pytestmark = [
    pytest.mark.skipif(
        not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL (TEST_DATABASE_URL)"
    ),
    pytest.mark.usefixtures("seeded"),
]


def set_connections(database_url: str, allowed: bool) -> None:
    """Refuse (and cut) or allow connections to the test database, from the server's side."""
    url = make_url(normalize_url(database_url))
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(
                text(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            )
            if not allowed:
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": url.database},
                )
    finally:
        admin.dispose()


def test_an_unreachable_database_is_unavailable_then_recovers(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    tap = chat.message(selection=flow_pb2.Selection(id="new_order"))

    set_connections(database_url, allowed=False)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            chat.send(tap)
    finally:
        set_connections(database_url, allowed=True)
    redelivered = chat.send(tap)  # as Meta redelivers what did not get a 200

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "try again" in caught.value.details()
    assert not redelivered.duplicate
    assert redelivered.conversation.flow == "new_order"


def test_a_batch_during_an_outage_is_unavailable_message_by_message(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chats = [Chat(stub, phone_number=f"4917100000{n}") for n in range(3)]
    request = flow_pb2.HandleMessagesRequest(messages=[c.message(text="hi") for c in chats])

    set_connections(database_url, allowed=False)
    try:
        during = stub.HandleMessages(request)
    finally:
        set_connections(database_url, allowed=True)
    after = stub.HandleMessages(request)  # as Meta redelivers what did not get a 200

    assert [r.error.code for r in during.results] == [code_pb2.UNAVAILABLE] * 3
    assert all("try again" in r.error.message for r in during.results)
    assert [r.handled.outcome for r in after.results] == [flow_pb2.OUTCOME_STARTED] * 3
    assert not any(r.handled.duplicate for r in after.results)


RETRYING = "database unreachable at start, retrying"


def test_flowsvc_started_during_an_outage_waits_for_the_database(
    database_url: str, tmp_path: Path
) -> None:
    set_connections(database_url, allowed=False)
    try:
        with ThreadPoolExecutor(1) as pool:
            starting = pool.submit(lambda: flowsvc_process(database_url, tmp_path / "f.log"))
            running = starting.result()
            entered = pool.submit(running.__enter__)
            # Until flowsvc has tried and failed (its start can take seconds on a busy machine).
            deadline = time.monotonic() + 30
            log = tmp_path / "f.log"
            while not (log.exists() and RETRYING in log.read_text()):
                assert time.monotonic() < deadline, "flowsvc never reported the outage"
                time.sleep(0.1)
            time.sleep(1)
            assert not entered.done()  # still waiting for the database, not exited
            set_connections(database_url, allowed=True)
            process = entered.result(timeout=60)
            with grpc.insecure_channel(process.address) as channel:
                templates = flow_pb2_grpc.FlowServiceStub(channel).ListTemplates(
                    flow_pb2.ListTemplatesRequest(), timeout=10
                )
            running.__exit__(None, None, None)
    finally:
        set_connections(database_url, allowed=True)

    assert {t.name for t in templates.templates} >= {"main_menu"}
    assert RETRYING in (tmp_path / "f.log").read_text()


def test_flowsvc_waiting_for_the_database_stops_on_sigterm(
    database_url: str, tmp_path: Path
) -> None:
    set_connections(database_url, allowed=False)
    log = tmp_path / "f.log"
    try:
        process = spawn_flowsvc(database_url, log).popen
        try:
            deadline = time.monotonic() + 30
            while RETRYING not in log.read_text():
                assert time.monotonic() < deadline, "flowsvc never reported the outage"
                time.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            assert process.wait(5) == 0  # it does not go on waiting for the database
        finally:
            if process.poll() is None:
                process.kill()
    finally:
        set_connections(database_url, allowed=True)
    assert "flowsvc serving" not in log.read_text()
