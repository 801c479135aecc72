"""Other services steering conversations, end to end: webhooks through the real gateway, calls
through menuflow.client, and what the Graph API stand-in receives. The payment example (the
order flow waits for payment; the payment service says "paid"; the customer gets the
confirmation) and "your order is ready" a day later (a message template outside the window),
with Meta's template errors and 131047 recorded as permanent failures with their codes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from flowsvc.store.db import create_db_engine
from menuflow.client import Connection, FailedPrecondition, FlowClient, message_template
from menuflow.v1 import flow_pb2_grpc
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
from tests.graph_templates import Approved
from tests.payloads import load_webhook
from tests.steering import PAY_ORDER

DAY = 24 * 3600
ORDER_READY = Approved("order_ready", "en_US", body=1, buttons=("quick_reply",))


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def shop(flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub) -> Iterator[FlowClient]:
    """Another service of the business, holding a client."""
    seed_default_templates(stub)
    with FlowClient(Connection(target=flowsvc_target, business=BUSINESS)) as client:
        client.import_templates([json.loads(PAY_ORDER.read_text())])
        yield client


@pytest.fixture
def meta(flowsvc_target: str, graph: StandinServer, shop: FlowClient) -> Iterator[httpx.Client]:
    """Meta's side: webhooks to the gateway, sends to the stand-in."""
    graph.standin.reset()
    graph.standin.approve(ORDER_READY)
    with running_gateway(gateway_settings(flowsvc_target, graph.url)) as gateway:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            yield client


def sent_to(graph: StandinServer, customer: str, count: int) -> list[dict[str, Any]]:
    """Wait for `count` messages Meta accepted for `customer`; their bodies."""

    def accepted() -> list[dict[str, Any]]:
        return [r.body for r in graph.standin.accepted() if r.body["to"] == customer]

    wait_until(lambda: len(accepted()) >= count, 15)
    return accepted()


def say(meta: httpx.Client, customer: str, **content: Any) -> None:
    assert post_webhook(meta, webhook(message(customer, **content))).status_code == 200


def outbox_failure(database_url: str, customer: str) -> tuple[str, int | None]:
    """The state and Meta error code of the customer's last outbox message."""
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT state, error_code FROM outbox WHERE phone_number = :customer "
                    "ORDER BY id DESC LIMIT 1"
                ),
                {"customer": customer},
            ).one()
    finally:
        engine.dispose()
    return row[0], row[1]


def test_the_payment_service_says_paid_and_the_customer_gets_the_confirmation(
    meta: httpx.Client, graph: StandinServer, shop: FlowClient
) -> None:
    customer = "15551110001"
    say(meta, customer, text="hi")
    sent_to(graph, customer, 1)  # the main menu
    shop.start_conversation(customer, "pay_order", context={"item": "2 x Coffee", "total": "7"})
    say(meta, customer, button=("pay", "💳 Pay"))
    assert "payment link" in sent_to(graph, customer, 3)[2]["interactive"]["body"]["text"]
    waiting = shop.get_conversation(customer)

    done = shop.update_conversation(
        customer,
        context={"paid": True},
        step="paid",
        expected_revision=waiting.revision,
        send=True,
    )

    confirmation = sent_to(graph, customer, 4)[3]
    assert confirmation["text"]["body"] == (
        "✅ Payment received: 2 x Coffee is confirmed. Your order number is "
        f"{done.result_reference}."
    )
    assert shop.get_result(done.result_reference).context["paid"] is True


def test_your_order_is_ready_a_day_later_goes_out_as_a_template(
    meta: httpx.Client, graph: StandinServer, shop: FlowClient
) -> None:
    customer = "15551110002"
    yesterday = int(time.time()) - DAY - 3600
    say(meta, customer, text="hi", timestamp=yesterday)
    sent_to(graph, customer, 1)  # the menu, which went out yesterday, within the window
    graph.standin.customer_wrote(customer, at=yesterday)  # Meta's window closed since

    with pytest.raises(FailedPrecondition, match="24-hour customer service window"):
        shop.send_message(customer, text="Your order is ready")
    shop.send_message(
        customer,
        text="Your order is ready",
        template=message_template("order_ready", "en_US", body=["K7M4Q2"], quick_replies={0: "ok"}),
    )

    template = sent_to(graph, customer, 2)[1]
    assert template["type"] == "template"
    assert template["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "K7M4Q2"}]},
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "0",
            "parameters": [{"type": "payload", "payload": "ok"}],
        },
    ]


def test_a_business_initiated_start_continues_when_the_customer_taps_the_template(
    meta: httpx.Client, graph: StandinServer, shop: FlowClient
) -> None:
    customer = "15551110003"  # has never written
    shop.start_conversation(
        customer,
        "pay_order",
        context={"item": "Cake", "total": "12.50"},
        template=message_template(
            "order_ready", "en_US", body=["Cake"], quick_replies={0: "ready"}
        ),
    )
    assert sent_to(graph, customer, 1)[0]["type"] == "template"

    tap = message(customer)
    tap |= {"type": "button", "button": {"payload": "ready", "text": "Pay now"}}
    assert post_webhook(meta, webhook(tap)).status_code == 200

    answer = sent_to(graph, customer, 2)[1]
    assert answer["interactive"]["body"]["text"] == (
        "We sent you a payment link for $12.50. We'll confirm here as soon as it is paid."
    )


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        pytest.param("paused", 132015, id="template-paused"),
        pytest.param("unknown", 132001, id="template-missing"),
        pytest.param("count", 132000, id="parameter-count"),
        pytest.param("window", 131047, id="re-engagement"),
    ],
)
def test_metas_refusals_are_failed_for_good_with_their_code(
    meta: httpx.Client,
    graph: StandinServer,
    shop: FlowClient,
    database_url: str,
    setup: str,
    code: int,
) -> None:
    customer = "15551110004"
    say(meta, customer, text="hi")
    sent_to(graph, customer, 1)
    template = message_template("order_ready", "en_US", body=["K7M4Q2"])
    if setup == "paused":
        graph.standin.approve(Approved("order_ready", "en_US", body=1, status="PAUSED"))
    elif setup == "unknown":
        template.name = "order_shipped"
    elif setup == "count":
        del template.body[:]
    if setup == "window":  # Meta's clock says the window closed: flowsvc sends, Meta refuses
        graph.standin.customer_wrote(customer, at=time.time() - 2 * DAY)
        shop.send_message(customer, text="Your order is ready")
    else:
        shop.send_message(customer, template=template)

    wait_until(lambda: outbox_failure(database_url, customer)[0] != "pending", 15)
    assert outbox_failure(database_url, customer) == ("failed", code)
    attempts = [r for r in graph.standin.received() if r.error_code == code]
    assert len(attempts) == 1  # never retried


def test_delivery_shows_up_as_events(
    meta: httpx.Client, graph: StandinServer, shop: FlowClient
) -> None:
    """Through the gateway and the stand-in: a reply queued, sent (Meta's id), delivered and read
    (status webhooks), and a message template Meta refuses failed with Meta's code."""
    customer = "15551110009"
    say(meta, customer, text="hi")
    [sent] = sent_to(graph, customer, 1)
    wamid = [r for r in graph.standin.accepted() if r.body["to"] == customer][0].wa_message_id
    wait_until(lambda: shop.list_events(types=["message_sent"], phone_number=customer), 15)
    status = load_webhook("status_delivered")
    change = status["entry"][0]["changes"][0]["value"]
    for kind in ("delivered", "read"):
        change["statuses"][0] |= {"id": wamid, "status": kind}
        assert post_webhook(meta, status).status_code == 200
    unknown = message_template("order_shipped", "en_US", body=["K7M4Q2"])  # Meta: 132001
    shop.send_message(customer, template=unknown)

    wanted = ["message_queued", "message_sent", "message_delivered", "message_read"]
    wanted.append("message_failed")
    found = wait_until(
        lambda: (
            events
            if len(events := shop.list_events(types=wanted, phone_number=customer)) >= 6
            else None
        ),
        15,
    )
    first = found[0].message_queued.outbox_id
    assert [(e.WhichOneof("payload"), e.customer.phone_number) for e in found[:4]] == [
        ("message_queued", customer),
        ("message_sent", customer),
        ("message_delivered", customer),
        ("message_read", customer),
    ]
    assert {e.message_sent.outbox_id for e in found[1:2]} == {first}
    assert found[1].message_sent.wa_message_id == wamid
    assert found[3].message_read.wa_message_id == wamid
    assert sent["to"] == customer
    assert [e.WhichOneof("payload") for e in found[4:]] == ["message_queued", "message_failed"]
    assert found[5].message_failed.error_code == 132001
