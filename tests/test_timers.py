"""Step timers end to end: customers talk through a real gateway to real flowsvc replicas, whose
replies reach the Graph API stand-in; a silent customer is reminded, then moved on, exactly once,
whichever replica fires the timer, across a restart, and however their reply races the timer.

Timers here last a second or two: the tests wait for what the customer receives (or, where
nothing must happen, fire the sweep themselves once the timer is past due), never for a time.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc
import httpx
import pytest

from flowsvc.server import Server
from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.gateway_harness import (
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer
from tests.servers import free_port, running_flowsvc
from tests.test_templates import struct

ASK = "Your name?"
REMIND = "Still there? Just send your name."
AGAIN = "We kept your place. Your name, please?"


def named(name: str) -> str:
    return f"Thanks {name}."


def signup(timeout: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "text",
        "body": {"text": ASK},
        "steps": {
            "initial": {"context_key": "name", "next_step": "done", "timeout": timeout},
            "ask_again": {"prompt": AGAIN, "context_key": "name", "next_step": "done"},
            "done": {"prompt": "Thanks {name}.", "end_conversation": True},
        },
    }


REMIND_THEN_GO = {"after": "2s", "remind": {"after": "1s", "text": REMIND}, "go": "ask_again"}
GO = {"after": "1s", "go": "ask_again"}
_customers = itertools.count(1)


def new_customer() -> str:
    return f"1650555{next(_customers):04d}"


def flowsvc_settings(database_url: str, *, timers: float, port: int = 0) -> Settings:
    return Settings(
        database_url=database_url,
        listen=f"127.0.0.1:{port}",
        grace_seconds=1,
        sweep_interval_seconds=0,
        timer_interval_seconds=timers,
    )


@contextmanager
def stub_of(server: Server) -> Iterator[flow_pb2_grpc.FlowServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield flow_pb2_grpc.FlowServiceStub(channel)


def create(stub: flow_pb2_grpc.FlowServiceStub, timeout: dict[str, Any]) -> None:
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=flow_pb2.TemplateDefinition(
                name="signup", trigger_keywords=["signup"], menu_structure=struct(signup(timeout))
            )
        )
    )


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


def texts(graph: StandinServer, customer: str) -> list[str]:
    """What `customer` received, in order."""
    return [
        sent.body["text"]["body"]
        for sent in graph.standin.accepted()
        if sent.body.get("to") == customer and sent.body.get("type") == "text"
    ]


def say(client: httpx.Client, customer: str, text: str) -> None:
    assert post_webhook(client, webhook(message(customer, text=text))).status_code == 200


def fired(stub: flow_pb2_grpc.FlowServiceStub) -> list[flow_pb2.Event]:
    page = stub.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(types=[flow_pb2.EVENT_TYPE_TIMER_FIRED]), page_size=1000
        )
    )
    return list(page.events)


def queued(stub: flow_pb2_grpc.FlowServiceStub) -> int:
    page = stub.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(types=[flow_pb2.EVENT_TYPE_MESSAGE_QUEUED]), page_size=1000
        )
    )
    return len(page.events)


def past_due(seconds: float) -> None:
    """Let a timer of `seconds` come due (the clock is the only way it does)."""
    until = time.monotonic() + seconds + 0.3
    wait_until(lambda: time.monotonic() > until, timeout=seconds + 5)


def test_a_silent_customer_is_reminded_then_taken_to_the_timeouts_step(
    database_url: str, graph: StandinServer
) -> None:
    with running_flowsvc(flowsvc_settings(database_url, timers=0.2)) as server:
        with (
            stub_of(server) as stub,
            running_gateway(gateway_settings(f"127.0.0.1:{server.port}", graph.url)) as gateway,
            httpx.Client(base_url=gateway.url, timeout=30) as client,
        ):
            create(stub, REMIND_THEN_GO)
            customer = new_customer()
            say(client, customer, "signup")
            wait_until(lambda: texts(graph, customer) == [ASK, REMIND, AGAIN], timeout=30)
            events = fired(stub)
            assert [(e.timer_fired.step, e.timer_fired.action) for e in events] == [
                ("initial", "remind"),
                ("initial", "go"),
            ]
            assert events[1].timer_fired.next_step == "ask_again"
            assert not any(e.timer_fired.window_closed for e in events)
            # Moved on, the customer answers the step the timer took them to.
            say(client, customer, "Ada")
            wait_until(lambda: texts(graph, customer)[-1:] == [named("Ada")], timeout=30)
            assert texts(graph, customer) == [ASK, REMIND, AGAIN, named("Ada")]


def test_the_customers_reply_cancels_the_timer(database_url: str, graph: StandinServer) -> None:
    # No timer thread: the reply always comes first; the sweep is then run by hand, past due.
    with running_flowsvc(flowsvc_settings(database_url, timers=0)) as server:
        with (
            stub_of(server) as stub,
            running_gateway(gateway_settings(f"127.0.0.1:{server.port}", graph.url)) as gateway,
            httpx.Client(base_url=gateway.url, timeout=30) as client,
        ):
            create(stub, REMIND_THEN_GO)
            silent, writer = new_customer(), new_customer()
            say(client, silent, "signup")
            say(client, writer, "signup")
            wait_until(lambda: texts(graph, writer) == [ASK] and texts(graph, silent) == [ASK])
            say(client, writer, "Bo")
            wait_until(lambda: texts(graph, writer) == [ASK, named("Bo")])
            past_due(2)
            stub.SweepExpired(flow_pb2.SweepExpiredRequest())
            stub.SweepExpired(flow_pb2.SweepExpiredRequest())
            wait_until(lambda: texts(graph, silent) == [ASK, REMIND])
            assert texts(graph, writer) == [ASK, named("Bo")]
            assert [e.customer.phone_number for e in fired(stub)] == [silent]


def test_two_replicas_racing_for_the_same_timers_fire_each_once(
    database_url: str, graph: StandinServer
) -> None:
    customers = [new_customer() for _ in range(8)]
    with (
        running_flowsvc(flowsvc_settings(database_url, timers=0)) as first,
        running_flowsvc(flowsvc_settings(database_url, timers=0)) as second,
    ):
        with (
            stub_of(first) as one,
            stub_of(second) as two,
            running_gateway(gateway_settings(f"127.0.0.1:{first.port}", graph.url)) as gateway,
            httpx.Client(base_url=gateway.url, timeout=30) as client,
        ):
            create(one, GO)
            for customer in customers:
                say(client, customer, "signup")
            wait_until(lambda: all(texts(graph, c) == [ASK] for c in customers), timeout=30)
            past_due(1)
            start = threading.Barrier(4)

            def sweep(stub: flow_pb2_grpc.FlowServiceStub) -> None:
                start.wait()
                for _ in range(3):
                    stub.SweepExpired(flow_pb2.SweepExpiredRequest())

            with ThreadPoolExecutor(4) as pool:
                for done in [pool.submit(sweep, s) for s in (one, two, one, two)]:
                    done.result()
            # Every sweep has returned: whatever fired is committed.
            assert sorted(e.customer.phone_number for e in fired(one)) == sorted(customers)
            assert queued(one) == 2 * len(customers)
            wait_until(lambda: all(texts(graph, c) == [ASK, AGAIN] for c in customers), 30)


def test_a_timer_due_while_flowsvc_is_down_fires_after_the_restart_once(
    database_url: str, graph: StandinServer
) -> None:
    port = free_port()
    customer = new_customer()
    target = f"127.0.0.1:{port}"
    with ExitStack() as before:
        server = before.enter_context(
            running_flowsvc(flowsvc_settings(database_url, timers=0, port=port))
        )
        with stub_of(server) as stub:
            create(stub, GO)
        gateway = before.enter_context(running_gateway(gateway_settings(target, graph.url)))
        client = before.enter_context(httpx.Client(base_url=gateway.url, timeout=30))
        say(client, customer, "signup")
        wait_until(lambda: texts(graph, customer) == [ASK], timeout=30)
    past_due(1)  # flowsvc (and its gateway) are down meanwhile
    with running_flowsvc(flowsvc_settings(database_url, timers=0.2, port=port)) as server:
        with running_gateway(gateway_settings(target, graph.url)):
            wait_until(lambda: texts(graph, customer) == [ASK, AGAIN], timeout=30)
        with stub_of(server) as stub:
            stub.SweepExpired(flow_pb2.SweepExpiredRequest())
            assert [e.timer_fired.action for e in fired(stub)] == ["go"]
    with running_flowsvc(flowsvc_settings(database_url, timers=0.2, port=port)) as server:
        with stub_of(server) as stub:
            stub.SweepExpired(flow_pb2.SweepExpiredRequest())
            assert len(fired(stub)) == 1
            assert queued(stub) == 2
    assert texts(graph, customer) == [ASK, AGAIN]


def test_a_customer_writing_as_the_timer_fires_gets_one_answer_either_way(
    database_url: str, graph: StandinServer
) -> None:
    customers = [new_customer() for _ in range(8)]
    with running_flowsvc(flowsvc_settings(database_url, timers=0)) as server:
        with (
            stub_of(server) as stub,
            running_gateway(gateway_settings(f"127.0.0.1:{server.port}", graph.url)) as gateway,
            httpx.Client(base_url=gateway.url, timeout=30) as client,
        ):
            create(stub, GO)
            for customer in customers:
                say(client, customer, "signup")
            wait_until(lambda: all(texts(graph, c) == [ASK] for c in customers), timeout=30)
            past_due(1)
            start = threading.Barrier(2)

            def sweep() -> None:
                start.wait()
                stub.SweepExpired(flow_pb2.SweepExpiredRequest())

            def write() -> None:
                start.wait()
                for customer in customers:
                    say(client, customer, "Ada")

            with ThreadPoolExecutor(2) as pool:
                for done in [pool.submit(sweep), pool.submit(write)]:
                    done.result()
            wait_until(lambda: all(texts(graph, c)[-1:] == [named("Ada")] for c in customers), 30)
            stub.SweepExpired(flow_pb2.SweepExpiredRequest())  # nothing is left to fire
            timed_out = {e.customer.phone_number for e in fired(stub)}
            for customer in customers:
                # The timer first: it moved them, and their reply answered the step it moved
                # them to. The reply first: the timer found nothing to do.
                expected = (
                    [ASK, AGAIN, named("Ada")] if customer in timed_out else [ASK, named("Ada")]
                )
                assert texts(graph, customer) == expected
            assert queued(stub) == sum(3 if c in timed_out else 2 for c in customers)
