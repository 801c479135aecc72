"""End to end: real gateway, real flowsvc, the Graph API stand-in; replies in order, each once."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from gateway.payload import parse
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.gateway_harness import (
    gateway_settings,
    main_menu,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import ServerThread, StandinServer
from tests.payloads import load_webhook, webhook_names

CUSTOMER = "16505551234"
FOOTER = {"text": 'Reply "cancel" at any time'}


def text(to: str, body: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def interactive(to: str, content: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": content,
    }


def reply(button_id: str, title: str) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": button_id, "title": title}}


def products(to: str) -> dict[str, Any]:
    def row(row_id: str, title: str, price: str) -> dict[str, str]:
        return {"id": row_id, "title": title, "description": price}

    sections = [
        {
            "title": "☕ Beverages",
            "rows": [
                row("coffee", "Coffee", "$3.50"),
                row("tea", "Tea", "$2.50"),
                row("juice", "Fresh Juice", "$4.00"),
            ],
        },
        {
            "title": "🍰 Food",
            "rows": [
                row("sandwich", "Sandwich", "$6.00"),
                row("salad", "Salad", "$7.00"),
                row("pasta", "Pasta", "$9.00"),
            ],
        },
    ]
    return interactive(
        to,
        {
            "type": "list",
            "body": {"text": "🛒 What would you like to order?"},
            "footer": FOOTER,
            "action": {"button": "View Products", "sections": sections},
        },
    )


def how_many(to: str) -> dict[str, Any]:
    return text(to, "How many Coffee would you like? Send a number from 1 to 99.")


def pickup_or_delivery(to: str) -> dict[str, Any]:
    buttons = [reply("pickup", "🏪 Pickup"), reply("delivery", "🛵 Delivery")]
    return interactive(
        to,
        {"type": "button", "body": {"text": "Pickup or delivery?"}, "action": {"buttons": buttons}},
    )


def confirm(to: str) -> dict[str, Any]:
    body = "🧾 Your order:\n2 x Coffee = $7.00\n\nShall I place it?"
    buttons = [reply("yes", "✅ Yes"), reply("no", "❌ No")]
    return interactive(
        to, {"type": "button", "body": {"text": body}, "action": {"buttons": buttons}}
    )


HI: dict[str, Any] = {"text": "hi"}
NEW_ORDER: dict[str, Any] = {"button": ("new_order", "🛒 New Order")}
COFFEE: dict[str, Any] = {"row": ("coffee", "Coffee")}
TWO: dict[str, Any] = {"text": "2"}
PICKUP: dict[str, Any] = {"button": ("pickup", "🏪 Pickup")}
YES: dict[str, Any] = {"button": ("yes", "✅ Yes")}
WALK = [
    (HI, main_menu),
    (NEW_ORDER, products),
    (COFFEE, how_many),
    (TWO, pickup_or_delivery),
    (PICKUP, confirm),
]


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
) -> Iterator[ServerThread]:
    graph.standin.reset()
    with running_gateway(gateway_settings(flowsvc_target, graph.url)) as server:
        yield server


@pytest.fixture
def client(gateway: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=30) as client:
        yield client


def deliver(client: httpx.Client, document: Any, attempts: int = 20) -> httpx.Response:
    """Post like Meta: redeliver until the answer is 200."""
    for _ in range(attempts):
        response = post_webhook(client, document)
        if response.status_code == 200:
            return response
        time.sleep(0.2)
    raise AssertionError(f"no 200 after {attempts} deliveries: {response.status_code}")


def bodies_by_customer(graph: StandinServer) -> dict[str, list[Any]]:
    sent: dict[str, list[Any]] = {}
    for record in graph.standin.accepted():
        sent.setdefault(record.body["to"], []).append(record.body)
    return sent


def settled(graph: StandinServer, count: int, timeout: float = 15.0) -> None:
    """Wait for `count` accepted sends, then make sure no extra one follows."""
    wait_until(lambda: len(graph.standin.accepted()) >= count, timeout)
    time.sleep(0.5)
    assert len(graph.standin.accepted()) == count


def test_the_guides_order_flow_sends_exactly_these_bodies_in_order(
    client: httpx.Client, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    for number, step in enumerate([HI, NEW_ORDER, COFFEE, TWO, PICKUP, YES], 1):
        assert post_webhook(client, webhook(message(CUSTOMER, **step))).status_code == 200
        wait_until(lambda n=number: len(graph.standin.accepted()) >= n)
    settled(graph, 6)
    [result] = seeded.ListResults(flow_pb2.ListResultsRequest()).results
    placed = (
        f"Order placed! Your order number is {result.reference}.\n\n"
        '2 x Coffee = $7.00\nThank you! Send "hi" any time to order again.'
    )
    expected = [
        main_menu(CUSTOMER),
        products(CUSTOMER),
        how_many(CUSTOMER),
        pickup_or_delivery(CUSTOMER),
        confirm(CUSTOMER),
        text(CUSTOMER, placed),
    ]
    assert [r.body for r in graph.standin.accepted()] == expected
    assert all(r.phone_number_id == "106540352242922" for r in graph.standin.accepted())


def test_100_messages_from_20_customers_in_one_payload(
    client: httpx.Client, graph: StandinServer
) -> None:
    customers = [f"49170000{n:04d}" for n in range(20)]
    messages = [
        message(customer, timestamp=1_700_000_000 + step, **inbound)
        for customer in customers
        for step, (inbound, _) in enumerate(WALK)
    ]
    random.Random(7).shuffle(messages)  # Meta does not promise order; timestamps do
    assert post_webhook(client, webhook(*messages)).status_code == 200
    settled(graph, 100, timeout=30)
    expected = {c: [reply_for(c) for _, reply_for in WALK] for c in customers}
    assert bodies_by_customer(graph) == expected


def test_the_same_payload_five_times_at_once_gets_one_reply_set(
    client: httpx.Client, graph: StandinServer
) -> None:
    customers = [f"49171000{n:04d}" for n in range(20)]
    document = webhook(*(message(c, **HI) for c in customers))
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: deliver(client, document), range(5)))
    assert {a.status_code for a in answers} == {200}
    settled(graph, 20)
    assert bodies_by_customer(graph) == {c: [main_menu(c)] for c in customers}


def test_graph_down_then_up_delivers_everything_once_in_order(
    client: httpx.Client, graph: StandinServer
) -> None:
    graph.standin.fail(status=503, seconds=1.5)
    customers = ["491720000001", "491720000002"]
    for inbound, _ in WALK[:3]:
        assert deliver(client, webhook(*(message(c, **inbound) for c in customers))).is_success
    settled(graph, 6, timeout=20)
    expected = {c: [reply_for(c) for _, reply_for in WALK[:3]] for c in customers}
    assert bodies_by_customer(graph) == expected
    assert any(r.status == 503 for r in graph.standin.received())


def test_a_permanent_error_is_recorded_with_metas_code_and_not_retried(
    client: httpx.Client, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    graph.standin.fail(code=131047, count=1)
    inbound = message(CUSTOMER, **HI)
    assert post_webhook(client, webhook(inbound)).status_code == 200
    wait_until(lambda: graph.standin.received())
    time.sleep(1.0)
    assert [(r.status, r.error_code) for r in graph.standin.received()] == [(400, 131047)]
    [inbound_proto] = parse(webhook(inbound)).messages
    again = seeded.HandleMessage(flow_pb2.HandleMessageRequest(message=inbound_proto))
    assert again.duplicate
    [outbox] = again.messages
    assert outbox.state == flow_pb2.DELIVERY_STATE_FAILED
    assert (outbox.error.code, outbox.attempts) == (131047, 1)


def test_a_pair_rate_limit_delays_only_that_customer(
    client: httpx.Client, graph: StandinServer
) -> None:
    slow, fast = "491730000001", "491730000002"
    graph.standin.fail(code=131056, to=slow, count=1)
    assert post_webhook(client, webhook(message(slow, **HI), message(fast, **HI))).is_success
    wait_until(lambda: len(graph.standin.accepted()) >= 2, timeout=10)
    first, second = graph.standin.accepted()
    assert (first.body["to"], second.body["to"]) == (fast, slow)
    throttled = next(r for r in graph.standin.received() if r.error_code == 131056)
    assert second.at - throttled.at >= 0.9  # 4^0 s for the first retry
    assert first.at - throttled.at < 0.9


def test_statuses_are_recorded_and_never_move_backwards(
    client: httpx.Client, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    inbound = message(CUSTOMER, **HI)
    assert post_webhook(client, webhook(inbound)).status_code == 200
    [sent] = wait_until(lambda: graph.standin.accepted())
    [inbound_proto] = parse(webhook(inbound)).messages
    redelivery = flow_pb2.HandleMessageRequest(message=inbound_proto)
    # Meta's id is known once the gateway's (batched) ack is committed: a status before that
    # matches no message (counted as matched="false"), so wait for it.
    wait_until(
        lambda: seeded.HandleMessage(redelivery).messages[0].wa_message_id == sent.wa_message_id
    )
    status = load_webhook("status_delivered")
    change = status["entry"][0]["changes"][0]["value"]
    for kind in ("read", "delivered", "sent"):
        change["statuses"][0] |= {"id": sent.wa_message_id, "status": kind}
        assert post_webhook(client, status).status_code == 200
    again = seeded.HandleMessage(redelivery)
    assert again.messages[0].delivery_status == flow_pb2.DELIVERY_STATUS_READ
    assert again.messages[0].wa_message_id == sent.wa_message_id


def test_every_webhook_shape_gets_200(client: httpx.Client, graph: StandinServer) -> None:
    answers = {
        name: post_webhook(client, load_webhook(name)).status_code for name in webhook_names()
    }
    assert answers == dict.fromkeys(answers, 200)
    # Text and taps from customers without a conversation get the main menu or a help text.
    wait_until(lambda: len(graph.standin.accepted()) >= 3)
    metrics = client.get("/metrics").text
    assert 'gateway_statuses_total{matched="false",status="read"}' in metrics
    assert 'gateway_webhook_items_total{fate="ignored",kind="change"}' in metrics


def test_inbound_messages_are_marked_read(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    graph.standin.reset()
    settings = gateway_settings(flowsvc_target, graph.url, mark_as_read=True)
    inbound = message(CUSTOMER, **HI)
    with running_gateway(settings) as server, httpx.Client(base_url=server.url) as client:
        assert post_webhook(client, webhook(inbound)).status_code == 200
        wait_until(lambda: len(graph.standin.received()) >= 2)
    reads = [r.body for r in graph.standin.received() if r.kind == "read"]
    assert reads == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": inbound["id"]}
    ]


def test_a_burst_waiting_for_a_send_slot_is_marked_read_with_its_newest_message(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    # One send slot, held for a second by the first Graph request: the receipts of the messages
    # handled meanwhile wait, and Meta marks earlier messages read with a later one.
    graph.standin.reset()
    graph.standin.fail("slow", delay=1.0, count=1, reads=True)
    settings = gateway_settings(flowsvc_target, graph.url, mark_as_read=True, send_concurrency=1)
    burst = [
        message(CUSTOMER, text=word, timestamp=1_700_000_000 + i)
        for i, word in enumerate(["hi", "hello", "menu"])
    ]
    with running_gateway(settings) as server, httpx.Client(base_url=server.url) as client:
        assert post_webhook(client, webhook(*burst)).status_code == 200
        wait_until(lambda: len(graph.standin.accepted()) >= 3)
        newest = {"messaging_product": "whatsapp", "status": "read", "message_id": burst[-1]["id"]}
        wait_until(lambda: any(r.body == newest for r in graph.standin.received()))
        metrics = client.get("/metrics").text
    reads = [r.body["message_id"] for r in graph.standin.received() if r.kind == "read"]
    assert len(reads) < len(burst)
    assert reads[-1] == burst[-1]["id"]
    assert 'gateway_reads_total{result="covered"}' in metrics


def test_a_reply_behind_another_gateways_send_goes_out_when_that_send_is_done(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> None:
    # Gateway A holds the customer's first reply (Meta answers it slowly) when the customer's next
    # message reaches gateway B: its reply cannot be leased to B before A is done. Polls are a
    # minute apart, so only B claiming again soon gets the reply out within the test.
    graph.standin.reset()
    graph.standin.fail("slow", delay=1.0, count=1, to=CUSTOMER)
    first, second = (
        gateway_settings(flowsvc_target, graph.url, gateway_id=name, outbox_poll_seconds=60)
        for name in ("gateway-a", "gateway-b")
    )
    with (
        running_gateway(first) as a,
        running_gateway(second) as b,
        httpx.Client(base_url=a.url) as client_a,
        httpx.Client(base_url=b.url) as client_b,
    ):
        assert post_webhook(client_a, webhook(message(CUSTOMER, **HI))).status_code == 200
        assert post_webhook(client_b, webhook(message(CUSTOMER, text="menu"))).status_code == 200
        wait_until(lambda: len(graph.standin.accepted()) >= 2)
    replies = [r.body for r in graph.standin.accepted()]
    assert [r["to"] for r in replies] == [CUSTOMER, CUSTOMER]
    assert replies[0] == main_menu(CUSTOMER)
