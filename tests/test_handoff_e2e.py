"""Handing a customer to people, end to end: webhooks through the real gateway, the agent's
calls through menuflow.client, and what the Graph API stand-in receives. The customer asks the
support template for a person, writes three messages that reach the agents' event stream in order
and get no bot reply, the agent answers twice and resumes the customer to the main menu, and the
customer carries on with the bot."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from menuflow.client import Connection, FlowClient
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


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def agent(flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub) -> Iterator[FlowClient]:
    """The agents' system, holding a client."""
    seed_default_templates(stub)
    with FlowClient(Connection(target=flowsvc_target, business=BUSINESS)) as client:
        yield client


@pytest.fixture
def meta(flowsvc_target: str, graph: StandinServer, agent: FlowClient) -> Iterator[httpx.Client]:
    graph.standin.reset()
    settings = gateway_settings(flowsvc_target, graph.url, mark_as_read=True)
    with running_gateway(settings) as gateway:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            yield client


def post(meta: httpx.Client, raw: dict[str, Any]) -> None:
    assert post_webhook(meta, webhook(raw)).status_code == 200


def sent_to(graph: StandinServer, customer: str, count: int) -> list[dict[str, Any]]:
    def accepted() -> list[dict[str, Any]]:
        return [r.body for r in graph.standin.accepted() if r.body["to"] == customer]

    wait_until(lambda: len(accepted()) >= count, 15)
    return accepted()


def customer_messages(stub: flow_pb2_grpc.FlowServiceStub, count: int) -> list[flow_pb2.Event]:
    def listed() -> list[flow_pb2.Event]:
        page = stub.ListEvents(
            flow_pb2.ListEventsRequest(
                filter=flow_pb2.EventFilter(types=[flow_pb2.EVENT_TYPE_CUSTOMER_MESSAGE]),
                page_size=100,
            )
        )
        return list(page.events)

    wait_until(lambda: len(listed()) >= count, 15)
    return listed()


def test_a_person_takes_over_and_gives_the_customer_back_to_the_bot(
    meta: httpx.Client,
    graph: StandinServer,
    agent: FlowClient,
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    customer = "15552220001"
    post(meta, message(customer, text="support"))
    sent_to(graph, customer, 1)
    post(meta, message(customer, button=("contact", "📞 Contact Us")))
    sent_to(graph, customer, 2)
    post(meta, message(customer, button=("person", "Talk to a person")))
    handoff_message = sent_to(graph, customer, 3)[2]
    assert handoff_message["text"]["body"].startswith("🙋 A member of our team")
    [waiting] = agent.handed_off(queue="support")
    assert waiting.customer.phone_number == customer

    text = message(customer, text="My order never came")
    image = message(customer)
    image |= {
        "type": "image",
        "image": {"id": "1555000000000042", "mime_type": "image/jpeg", "caption": "receipt"},
    }
    stale_tap = message(customer, button=("faq", "❓ FAQ"))  # the support menu's, long gone
    for raw in (text, image, stale_tap, image, text):  # Meta redelivers some
        post(meta, raw)

    said = customer_messages(stub, 3)
    assert [e.customer_message.message_id for e in said] == [
        text["id"],
        image["id"],
        stale_tap["id"],
    ]
    assert said[0].customer_message.text == "My order never came"
    assert said[1].customer_message.media.id == "1555000000000042"
    assert said[1].customer_message.media.caption == "receipt"
    assert said[2].customer_message.selection.id == "faq"
    wait_until(
        lambda: (
            {r.body["message_id"] for r in graph.standin.received() if r.kind == "read"}
            & {text["id"], image["id"], stale_tap["id"]}
        )
    )

    agent.send_message(customer, text="Hi, this is Ana. Let me check.", agent="Ana")
    agent.send_message(customer, text="It is on its way, 10 more minutes.", agent="Ana")
    replies = sent_to(graph, customer, 5)
    assert len(replies) == 5  # no bot reply to any of the customer's three messages
    assert [r["text"]["body"] for r in replies[3:]] == [
        "Hi, this is Ana. Let me check.",
        "It is on its way, 10 more minutes.",
    ]

    back = agent.resume(customer, flow="main_menu", text="Anything else? Here is the menu.")
    assert back.conversation.flow == "main_menu"
    menu = sent_to(graph, customer, 7)
    assert menu[5]["text"]["body"] == "Anything else? Here is the menu."
    assert menu[6]["type"] == "interactive"
    assert not agent.handed_off()

    post(meta, message(customer, button=("support", "💬 Support")))
    assert sent_to(graph, customer, 8)[7]["type"] == "interactive"
    assert agent.get_conversation(customer).flow == "support"
