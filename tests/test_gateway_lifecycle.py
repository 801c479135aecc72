"""Gateway shutdown and death: in-flight sends finish, unsent leases return, and a killed gateway's
replies still go out (through another gateway, once its lease ends)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from flowsvc.store.db import create_db_engine
from menuflow.v1 import flow_pb2_grpc
from tests.gateway_harness import (
    ACCESS_TOKEN,
    APP_SECRET,
    VERIFY_TOKEN,
    gateway_settings,
    main_menu,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import Received, StandinServer, StatusWebhooks

ROOT = Path(__file__).resolve().parents[1]
HI = {"text": "hi"}


@pytest.fixture
def seeded(stub: flow_pb2_grpc.FlowServiceStub) -> flow_pb2_grpc.FlowServiceStub:
    seed_default_templates(stub)
    return stub


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


def test_shutdown_finishes_sends_in_flight_and_releases_the_rest(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    graph.standin.reset()
    graph.standin.fail("slow", delay=0.5, count=1)
    first, second = "491740000001", "491740000002"
    # One send per second: the second customer's reply waits for its slot when shutdown begins.
    settings = gateway_settings(flowsvc_target, graph.url, send_rate_per_second=1)
    with running_gateway(settings) as server, httpx.Client(base_url=server.url) as client:
        document = webhook(message(first, **HI), message(second, **HI, timestamp=1))
        assert post_webhook(client, document).status_code == 200
    assert len(graph.standin.accepted()) == 1  # whichever customer got the slot
    started = time.monotonic()
    with running_gateway(gateway_settings(flowsvc_target, graph.url)):
        wait_until(lambda: len(graph.standin.accepted()) >= 2, timeout=5)
    assert time.monotonic() - started < 3  # released, not left to expire
    bodies = sorted((r.body for r in graph.standin.accepted()), key=lambda body: body["to"])
    assert bodies == [main_menu(first), main_menu(second)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_gateway_killed_right_after_its_200_is_replaced_by_another(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    graph.standin.reset()
    # The first gateway's Graph API accepts connections and never answers: its send is in flight.
    blackhole = socket.create_server(("127.0.0.1", 0), backlog=16)
    port = free_port()
    env = os.environ | {
        "META_APP_SECRET": APP_SECRET,
        "META_VERIFY_TOKEN": VERIFY_TOKEN,
        "META_ACCESS_TOKEN": ACCESS_TOKEN,
        "FLOWSVC_TARGET": flowsvc_target,
        "GRAPH_API_URL": f"http://127.0.0.1:{blackhole.getsockname()[1]}",
        "GRAPH_TIMEOUT_SECONDS": "1",
        "OUTBOX_LEASE_SECONDS": "6",
        "GATEWAY_PORT": str(port),
        "MARK_AS_READ": "0",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            def healthy() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, timeout=15)
            assert post_webhook(client, webhook(message("491750000001", **HI))).status_code == 200
        time.sleep(0.3)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed_at = time.monotonic()
        with running_gateway(gateway_settings(flowsvc_target, graph.url)):
            wait_until(lambda: graph.standin.accepted(), timeout=15)
            time.sleep(0.5)
        assert [r.body for r in graph.standin.accepted()] == [main_menu("491750000001")]
        assert time.monotonic() - killed_at > 4  # it waited for the dead gateway's lease to end
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        blackhole.close()


def test_a_reply_meta_accepted_just_before_its_gateway_died_is_not_sent_again(
    flowsvc_target: str, seeded: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    customer = "491750000002"
    port = free_port()
    survivor_settings = gateway_settings(flowsvc_target, "http://127.0.0.1:1")
    with (
        StandinServer() as graph,
        running_gateway(replace(survivor_settings, graph_api_url=graph.url)) as survivor,
    ):
        # Meta: each accepted message gets a "sent" status webhook, echoing its tracker.
        graph.standin.statuses = StatusWebhooks([f"{survivor.url}/webhook"], APP_SECRET)
        env = os.environ | {
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
            "META_ACCESS_TOKEN": ACCESS_TOKEN,
            "FLOWSVC_TARGET": flowsvc_target,
            "GRAPH_API_URL": graph.url,
            "GRAPH_TIMEOUT_SECONDS": "1",
            "OUTBOX_LEASE_SECONDS": "6",
            "GATEWAY_PORT": str(port),
            "MARK_AS_READ": "0",
            "LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env)

        def die(accepted: Received) -> None:
            # Meta has taken the message; its sender dies before it reads the 200 (so no ack).
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait(10)

        graph.standin.on_accept = die
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                wait_until(lambda: _healthy(client), timeout=15)
                document = webhook(message(customer, **HI))
                assert post_webhook(client, document).status_code == 200
            wait_until(lambda: process.poll() is not None, timeout=15)
            # Sent once: recorded from its status webhook, or (without one) sent again after the
            # dead gateway's lease and the grace ended.
            wait_until(lambda: _pending_replies(database_url) == 0, timeout=30, interval=0.1)
            accepted = graph.standin.accepted()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    assert [r.body for r in accepted] == [main_menu(customer)]
    assert accepted[0].callback_data.startswith("menuflow:outbox:")


def _healthy(client: httpx.Client) -> bool:
    try:
        return client.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


def _pending_replies(database_url: str) -> int:
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return int(
                connection.scalar(text("SELECT count(*) FROM outbox WHERE state = 'pending'")) or 0
            )
    finally:
        engine.dispose()
