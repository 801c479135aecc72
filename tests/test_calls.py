"""Call steps end to end: a real flowsvc (SQLite, or PostgreSQL with TEST_DATABASE_URL), a real
gateway and the Graph API stand-in, and the shipped order flow calling the address_check
stand-in on loopback, which answers, fails (5xx, 4xx), is slow, lacks a field, or is down.
What is asserted is what the customer is sent, and what the endpoint was sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import sqlalchemy
from prometheus_client.parser import text_string_to_metric_families

from gateway.call_endpoints import CallEndpoint, parse
from menuflow.business_standin import BusinessStandin
from menuflow.environment import SettingsError
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.gateway_harness import (
    BUSINESS,
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer
from tests.logcapture import captured_logs
from tests.servers import free_port

ONE_MOMENT = "One moment, I'm checking that we deliver to 12 Harbour Road…"
CONFIRMED = "Delivery to 12 Harbour Road (zone B)."
FAILED = "Sorry, I could not confirm delivery to that address."


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def seeded(stub: flow_pb2_grpc.FlowServiceStub) -> flow_pb2_grpc.FlowServiceStub:
    seed_default_templates(stub)
    return stub


@contextmanager
def gateway(
    flowsvc_target: str, graph: StandinServer, url: str, *, idempotent: bool = True
) -> Iterator[httpx.Client]:
    graph.standin.reset()
    endpoint = CallEndpoint("address_check", url, {"X-Shop-Key": "s3cret"}, idempotent)
    settings = gateway_settings(
        flowsvc_target, graph.url, call_endpoints=(endpoint,), call_poll_seconds=0.05
    )
    with running_gateway(settings) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client


def texts_to(graph: StandinServer, customer: str) -> list[str]:
    found = []
    for record in graph.standin.accepted():
        body = record.body
        if body.get("to") != customer:
            continue
        if body["type"] == "text":
            found.append(body["text"]["body"])
        elif body["type"] == "interactive":
            found.append(body["interactive"]["body"]["text"])
    return found


def say(client: httpx.Client, graph: StandinServer, customer: str, **what: Any) -> None:
    """The customer sends one message; wait until the bot has answered it."""
    before = len(texts_to(graph, customer))
    assert post_webhook(client, webhook(message(customer, **what))).status_code == 200
    wait_until(lambda: len(texts_to(graph, customer)) > before)


def to_address_check(client: httpx.Client, graph: StandinServer, customer: str) -> None:
    """Two coffees for delivery to 12 Harbour Road: the bot says one moment and calls."""
    say(client, graph, customer, text="order")
    say(client, graph, customer, row=("coffee", "Coffee"))
    say(client, graph, customer, text="2")
    assert texts_to(graph, customer)[-1] == "Pickup or delivery?"
    say(client, graph, customer, button=("delivery", "🛵 Delivery"))
    say(client, graph, customer, text="12 Harbour Road")


def answered(graph: StandinServer, customer: str, text: str) -> list[str]:
    return wait_until(lambda: [t for t in texts_to(graph, customer) if text in t], timeout=15)


def test_the_endpoint_answers_and_the_order_goes_on_with_its_zone(
    flowsvc_target: str, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    customer = "16505550101"
    with gateway(flowsvc_target, graph, api.url) as client:
        to_address_check(client, graph, customer)
        answered(graph, customer, CONFIRMED)
    sent = texts_to(graph, customer)
    assert sent[-2:] == [ONE_MOMENT, sent[-1]] and CONFIRMED in sent[-1]
    assert [r["body"] for r in api.requests] == [{"address": "12 Harbour Road"}]
    assert api.requests[0]["path"] == "/check"
    assert api.requests[0]["headers"]["X-Shop-Key"] == "s3cret"  # from settings, not the template
    events = seeded.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(
                phone_number=customer,
                types=[flow_pb2.EVENT_TYPE_CALL_QUEUED, flow_pb2.EVENT_TYPE_CALL_COMPLETED],
            )
        )
    ).events
    assert [e.type for e in events] == [
        flow_pb2.EVENT_TYPE_CALL_QUEUED,
        flow_pb2.EVENT_TYPE_CALL_COMPLETED,
    ]
    assert events[1].call_completed.endpoint == "address_check"
    assert events[1].call_completed.status_code == 200


@pytest.mark.parametrize(
    ("behaviour", "requests", "detail"),
    [
        ({"status": 503}, 3, "status 503"),  # idempotent: retried twice, then the failure path
        ({"status": 404}, 1, "status 404"),  # a client error is not retried
        ({"without": "zone"}, 1, "the response lacks the mapped field 'zone'"),
    ],
    ids=["5xx", "4xx", "missing-field"],
)
def test_a_failing_endpoint_sends_the_customer_down_the_failure_path(
    flowsvc_target: str,
    graph: StandinServer,
    api: BusinessStandin,
    seeded: Any,
    behaviour: dict[str, Any],
    requests: int,
    detail: str,
) -> None:
    customer = f"165055502{requests:02d}"
    api.behave(**behaviour)
    with gateway(flowsvc_target, graph, api.url) as client:
        to_address_check(client, graph, customer)
        answered(graph, customer, FAILED)
        say(client, graph, customer, button=("pickup", "🏪 Pickup"))
    sent = texts_to(graph, customer)
    assert sent[-3] == ONE_MOMENT and FAILED in sent[-2]
    assert "Shall I place it?" in sent[-1]  # picked up instead: nothing stuck
    assert len(api.requests) == requests
    failed = seeded.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(
                phone_number=customer, types=[flow_pb2.EVENT_TYPE_CALL_FAILED]
            )
        )
    ).events
    assert [e.call_failed.detail for e in failed] == [detail]


def test_an_endpoint_that_is_down_takes_the_failure_path(
    flowsvc_target: str, graph: StandinServer, seeded: Any
) -> None:
    customer = "16505550301"
    nothing_there = f"http://127.0.0.1:{free_port()}"  # connection refused
    with gateway(flowsvc_target, graph, nothing_there) as client:
        to_address_check(client, graph, customer)
        answered(graph, customer, FAILED)
    assert texts_to(graph, customer)[-2] == ONE_MOMENT


def test_a_slow_endpoint_times_out_and_the_customer_hears_it(
    flowsvc_target: str, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    """The shipped step waits 5 s; the stand-in answers after 8 s (too late)."""
    customer = "16505550401"
    api.behave(delay=8.0)
    with gateway(flowsvc_target, graph, api.url) as client:
        to_address_check(client, graph, customer)
        say(client, graph, customer, text="are you there?")  # while the call runs
        assert texts_to(graph, customer)[-1] == ONE_MOMENT
        answered(graph, customer, FAILED)
    timed_out = seeded.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(
                phone_number=customer, types=[flow_pb2.EVENT_TYPE_CALL_FAILED]
            )
        )
    ).events
    assert [e.call_failed.kind for e in timed_out] == ["timeout"]
    assert len(api.requests) == 1  # a timeout is not retried, even to an idempotent endpoint


def handle(stub: flow_pb2_grpc.FlowServiceStub, customer: str, n: int, **what: Any) -> None:
    raw = message(customer, message_id=f"wamid.CALLS{customer}{n}", **what)
    inbound = flow_pb2.InboundMessage(
        message_id=raw["id"],
        customer=flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=customer),
    )
    if "text" in what:
        inbound.text = what["text"]
    else:
        inbound.selection.id, inbound.selection.title = what.get("row") or what["button"]
    stub.HandleMessage(flow_pb2.HandleMessageRequest(message=inbound))


def waiting_for_the_call(stub: flow_pb2_grpc.FlowServiceStub, customer: str) -> None:
    """Straight through FlowService (no gateway): the customer's conversation waits in the call
    step, its call queued."""
    for n, what in enumerate(
        [
            {"text": "order"},
            {"row": ("coffee", "Coffee")},
            {"text": "2"},
            {"button": ("delivery", "🛵 Delivery")},
            {"text": "12 Harbour Road"},
        ]
    ):
        handle(stub, customer, n, **what)
    conversation = stub.GetConversation(
        flow_pb2.GetConversationRequest(
            customer=flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=customer)
        )
    ).conversation
    assert conversation.current_step == "check_address"


@pytest.mark.parametrize("idempotent", [False, True], ids=["not-idempotent", "idempotent"])
def test_a_call_whose_sender_died_after_sending_is_sent_again_only_when_idempotent(
    flowsvc_target: str,
    graph: StandinServer,
    api: BusinessStandin,
    seeded: flow_pb2_grpc.FlowServiceStub,
    idempotent: bool,
) -> None:
    customer = "16505550501" if idempotent else "16505550502"
    waiting_for_the_call(seeded, customer)
    # A gateway claims the call, writes the request, and dies before handing the result back.
    claimed = seeded.ClaimCalls(
        flow_pb2.ClaimCallsRequest(owner="gateway-that-dies", max_calls=10, lease_seconds=1)
    ).calls
    assert [(c.endpoint, c.attempts) for c in claimed] == [("address_check", 1)]
    httpx.post(api.url + claimed[0].path, content=claimed[0].body_json)
    # A live gateway claims it once the lease has ended.
    with gateway(flowsvc_target, graph, api.url, idempotent=idempotent) as _:
        answered(graph, customer, CONFIRMED if idempotent else FAILED)
    assert len(api.requests) == (2 if idempotent else 1)


def test_a_result_delivered_twice_continues_the_flow_once(
    seeded: flow_pb2_grpc.FlowServiceStub,
) -> None:
    customer = "16505550601"
    waiting_for_the_call(seeded, customer)
    (call,) = seeded.ClaimCalls(flow_pb2.ClaimCallsRequest(owner="g1", lease_seconds=30)).calls
    result = flow_pb2.FinishCallRequest(
        call_id=call.id,
        kind=flow_pb2.CALL_RESULT_KIND_ANSWERED,
        status_code=200,
        body=json.dumps({"zone": "B"}),
    )
    with captured_logs(debug=["flowsvc.messages"]) as logs:
        first = seeded.FinishCall(result)
        second = seeded.FinishCall(result)
    lines = logs.named("call result handled")
    assert [line["customer"] for line in lines] == ["***0601", "***0601"]
    assert customer not in logs.text
    late_failure = seeded.FinishCall(
        flow_pb2.FinishCallRequest(call_id=call.id, kind=flow_pb2.CALL_RESULT_KIND_TIMEOUT)
    )
    assert first.outcome == flow_pb2.OUTCOME_ADVANCED and not first.duplicate
    assert first.conversation.current_step == "delivery_confirmation"
    assert second.duplicate and late_failure.duplicate
    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    now = seeded.GetConversation(
        flow_pb2.GetConversationRequest(
            customer=flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=customer)
        )
    ).conversation
    assert now.current_step == "delivery_confirmation"
    assert now.revision == first.conversation.revision
    assert list(seeded.ClaimCalls(flow_pb2.ClaimCallsRequest(owner="g2")).calls) == []


def test_a_result_for_a_conversation_that_moved_on_changes_nothing(
    seeded: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    customer = "16505550701"
    waiting_for_the_call(seeded, customer)
    (call,) = seeded.ClaimCalls(flow_pb2.ClaimCallsRequest(owner="g1")).calls
    handle(seeded, customer, 9, text="cancel")
    late = seeded.FinishCall(
        flow_pb2.FinishCallRequest(
            call_id=call.id, kind=flow_pb2.CALL_RESULT_KIND_ANSWERED, status_code=200, body="{}"
        )
    )
    assert late.outcome == flow_pb2.OUTCOME_IGNORED and not late.messages
    engine = sqlalchemy.create_engine(database_url)
    with engine.connect() as connection:
        states = connection.execute(
            sqlalchemy.text("SELECT state FROM calls WHERE id = :id"), {"id": call.id}
        ).scalars()
        assert list(states) == ["done"]  # never claimed and run again
    engine.dispose()


def test_call_endpoints_setting_reads_secrets_by_name_and_says_what_is_wrong() -> None:
    raw = json.dumps(
        [
            {
                "name": "address_check",
                "url": "https://api.shop.example/v1",
                "secret_headers": {"Authorization": "SHOP_TOKEN"},
                "idempotent": True,
            }
        ]
    )
    (endpoint,) = parse(raw, {"SHOP_TOKEN": "Bearer abc"})
    assert endpoint.headers == {"Authorization": "Bearer abc"} and endpoint.idempotent
    assert "Bearer abc" not in repr(endpoint)
    assert endpoint.url_for("/check") == "https://api.shop.example/v1/check"
    for bad, problem in [
        (raw, "the variable SHOP_TOKEN is not set"),
        ('[{"name": "x", "url": "http://api.example"}]', "https only"),
        ('[{"name": "x", "url": "https://a.example", "retries": 9}]', "retries: from 0 to 5"),
        ('[{"name": "x", "url": "https://a.example", "token": "t"}]', "unknown keys"),
    ]:
        with pytest.raises(SettingsError, match=problem):
            parse(bad, {})


def test_the_gateway_counts_calls_and_times_them_by_endpoint(
    flowsvc_target: str, graph: StandinServer, api: BusinessStandin, seeded: Any
) -> None:
    with gateway(flowsvc_target, graph, api.url) as client:
        to_address_check(client, graph, "16505550801")
        answered(graph, "16505550801", CONFIRMED)
        api.behave(status=503)  # idempotent: sent three times, then the failure path
        to_address_check(client, graph, "16505550802")
        answered(graph, "16505550802", FAILED)
        text = client.get("/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted({"endpoint": "address_check", **labels}.items()))))

    assert value("gateway_call_requests_total", result="2xx") == 1
    assert value("gateway_call_requests_total", result="5xx") == 3
    assert value("gateway_calls_total", kind="answered") == 2  # the 503 too: an answer
    assert value("gateway_calls_total", kind="failed") is None
    assert value("gateway_call_seconds_count") == 4
    assert value("gateway_call_seconds_bucket", le="30.0") == 4
    assert "16505550801" not in text


def test_a_call_with_no_answer_counts_as_failed(
    flowsvc_target: str, graph: StandinServer, seeded: Any
) -> None:
    nothing_there = f"http://127.0.0.1:{free_port()}"  # connection refused, retried twice
    with gateway(flowsvc_target, graph, nothing_there) as client:
        to_address_check(client, graph, "16505550803")
        answered(graph, "16505550803", FAILED)
        text = client.get("/metrics").text
    assert 'gateway_call_requests_total{endpoint="address_check",result="error"} 3.0' in text
    assert 'gateway_calls_total{endpoint="address_check",kind="failed"} 1.0' in text
