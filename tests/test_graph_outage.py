"""A Graph API outage loses nothing (issue 14, item 1): transient failures are retried until the
send deadline, a circuit breaker per business number lets one probe through at a time, and every
reply goes out once, in each customer's order. Real gateway, real flowsvc, the Graph stand-in;
the timings are scaled down by settings (backoff capped at 1 s, cool-downs of 0.2-0.5 s)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from gateway.deadline import DEADLINE_PASSED, WINDOW_CLOSED, WINDOW_SECONDS, limit
from gateway.payload import parse
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.gateway_harness import (
    BUSINESS,
    gateway_settings,
    main_menu,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer
from tests.test_gateway_flow import WALK, bodies_by_customer, deliver

SCALED: dict[str, Any] = {
    "send_backoff_max_seconds": 1.0,
    "breaker_failures": 3,
    "breaker_cooldown_seconds": 0.2,
    "breaker_cooldown_max_seconds": 0.5,
    "send_deadline_seconds": 60.0,
}
SOMETHING_WENT_WRONG = 131000  # Meta's HTTP 500 "Something went wrong"
# Under the old policy 131000 failed for good at its 5th attempt (about 23 s at full scale).
OLD_ATTEMPT_LIMIT = 5


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def seeded(stub: flow_pb2_grpc.FlowServiceStub) -> flow_pb2_grpc.FlowServiceStub:
    seed_default_templates(stub)
    return stub


@pytest.fixture
def gateway(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> Callable[..., Any]:
    """A gateway with the scaled-down retry settings (and any overrides), as a context manager."""
    graph.standin.reset()

    @contextmanager
    def start(**overrides: Any) -> Iterator[httpx.Client]:
        settings = gateway_settings(flowsvc_target, graph.url, **(SCALED | overrides))
        with (
            running_gateway(settings) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            yield client

    return start


def walk_the_order_flow(client: httpx.Client, customers: list[str]) -> dict[str, list[Any]]:
    """Every customer walks hi -> New Order -> Coffee -> 2 -> No, one step every 0.3 s (not
    waiting for replies, as people do not while Meta is down); returns the replies expected."""
    for inbound, _ in WALK:
        deliver(client, webhook(*(message(c, **inbound) for c in customers)))
        time.sleep(0.3)
    return {c: [reply_for(c) for _, reply_for in WALK] for c in customers}


def delivered_once_in_order(graph: StandinServer, expected: dict[str, list[Any]]) -> None:
    count = sum(len(replies) for replies in expected.values())
    wait_until(lambda: len(graph.standin.accepted()) >= count, timeout=40)
    time.sleep(0.5)  # nothing more may follow
    assert bodies_by_customer(graph) == expected


def outbox_of(stub: flow_pb2_grpc.FlowServiceStub, inbound: dict[str, Any]) -> Any:
    """The outbox messages an inbound message produced (asking again is a duplicate)."""
    [parsed] = parse(webhook(inbound)).messages
    return stub.HandleMessage(flow_pb2.HandleMessageRequest(message=parsed)).messages


def customers(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param({"seconds": 6.0}, id="down-6s"),
        pytest.param({"seconds": 6.0, "down": 1.2, "up": 0.4}, id="flapping"),
    ],
)
def test_twenty_customers_get_every_reply_once_in_order_through_an_outage(
    gateway: Callable[..., Any], graph: StandinServer, fault: dict[str, Any]
) -> None:
    # 6 s of HTTP 500 / 131000 is many times what 5 attempts take with a 1 s backoff cap.
    people = customers(20, "4917100")
    with gateway() as client:
        graph.standin.fail(code=SOMETHING_WENT_WRONG, delay=0.05, **fault)
        expected = walk_the_order_flow(client, people)
        delivered_once_in_order(graph, expected)
    assert any(r.error_code == SOMETHING_WENT_WRONG for r in graph.standin.received())


def test_a_transient_failure_is_retried_past_any_attempt_count(
    gateway: Callable[..., Any], graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    failures = OLD_ATTEMPT_LIMIT + 1
    inbound = message("491720009999", text="hi")
    with gateway() as client:
        graph.standin.fail(code=SOMETHING_WENT_WRONG, count=failures)
        assert post_webhook(client, webhook(inbound)).status_code == 200
        wait_until(lambda: graph.standin.accepted(), timeout=20)
        time.sleep(0.5)
    assert [r.body for r in graph.standin.accepted()] == [main_menu("491720009999")]
    [sent] = outbox_of(seeded, inbound)
    assert (sent.state, sent.attempts) == (flow_pb2.DELIVERY_STATE_SENT, failures + 1)


def test_a_message_past_the_send_deadline_fails_saying_so(
    gateway: Callable[..., Any], graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    inbound = message("491720008888", text="hi")
    with gateway(send_deadline_seconds=2.0) as client:
        graph.standin.fail(code=SOMETHING_WENT_WRONG, to="491720008888")
        assert post_webhook(client, webhook(inbound)).status_code == 200
        failed = wait_until(
            lambda: [
                m for m in outbox_of(seeded, inbound) if m.state == flow_pb2.DELIVERY_STATE_FAILED
            ],
            timeout=15,
        )
        # Counted when the gateway has the ack's answer, a moment after the row shows it.
        expired = 'gateway_sends_total{code="deadline_passed",result="failed"} 1.0'
        assert wait_until(lambda: expired in client.get("/metrics").text, timeout=5)
    [outbox] = failed
    assert outbox.error.title == DEADLINE_PASSED
    assert "last error: 131000" in outbox.error.details
    assert not graph.standin.accepted()


def test_while_the_breaker_is_open_one_probe_at_a_time_then_the_backlog_flows(
    gateway: Callable[..., Any], graph: StandinServer
) -> None:
    people = customers(20, "4917200")
    with gateway() as client:
        # Slow failures, so that probes sent side by side would overlap at the stand-in.
        graph.standin.fail(code=SOMETHING_WENT_WRONG, delay=0.2)
        deliver(client, webhook(*(message(c, text="hi") for c in people)))
        ready = wait_until(
            lambda: (r := client.get("/readyz")).json()["breakers"].get(BUSINESS) and r
        )
        assert ready.status_code == 200 and ready.json()["status"] == "graph_api_failing"
        # From a moment when nothing is in flight, every request is a lone probe.
        wait_until(lambda: graph.standin.in_flight(BUSINESS) == 0, interval=0.005)
        mark = len(graph.standin.received())
        probes = wait_until(
            lambda: (
                graph.standin.received()[mark:][:4]
                if len(graph.standin.received()) >= mark + 4
                else None
            ),
            timeout=15,
        )
        metrics = client.get("/metrics").text
        graph.standin.heal()
        delivered_once_in_order(graph, {c: [main_menu(c)] for c in people})
        after = client.get("/readyz").json()
    assert [(r.in_flight, r.error_code) for r in probes] == [(1, SOMETHING_WENT_WRONG)] * 4
    state = re.search(rf'gateway_breaker_state{{phone_number_id="{BUSINESS}"}} (\S+)', metrics)
    assert state is not None and float(state[1]) in (1.0, 2.0)  # half-open or open
    assert 'gateway_send_retries_total{reason="131000"}' in metrics
    assert after["status"] == "ok" and after["breakers"] == {}


def test_a_free_form_message_never_waits_past_metas_24_hour_window() -> None:
    queued = flow_pb2.OutboxMessage(body_json='{"type": "text", "text": {"body": "hi"}}')
    queued.create_time.FromSeconds(int(time.time()))
    template = flow_pb2.OutboxMessage(body_json='{"type": "template", "template": {}}')
    template.create_time.CopyFrom(queued.create_time)
    two_days = 2 * WINDOW_SECONDS
    assert (limit(queued, two_days).reason, limit(queued, two_days).seconds) == (
        WINDOW_CLOSED,
        WINDOW_SECONDS,
    )
    assert (limit(template, two_days).reason, limit(template, two_days).seconds) == (
        DEADLINE_PASSED,
        two_days,
    )
    assert limit(queued, 3600).seconds == 3600
