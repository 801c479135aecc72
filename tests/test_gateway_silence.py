"""Messages that need no answer, end to end: a customer mid-order reacts, edits or deletes a
message, changes number, or answers a call permission request. Each is recorded (a redelivery is a
duplicate), nothing is sent back, and the order goes on where it was. An image still gets the
polite re-ask."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

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

CUSTOMER = "4915112340000"
EARLIER = "wamid.HBgNNDkxNTExMjM0MDAwMBUCABIYFjNFQjBFQTc5QUJGRkQyNzI2NUJGAA=="

# Each as Meta's webhook carries it (meta-contract.md, "inbound message types").
NO_ANSWER: dict[str, dict[str, Any]] = {
    "reaction": {"type": "reaction", "reaction": {"message_id": EARLIER, "emoji": "👍"}},
    "unreaction": {"type": "reaction", "reaction": {"message_id": EARLIER}},
    "edit": {
        "type": "edit",
        "edit": {
            "original_message_id": EARLIER,
            "message": {"type": "text", "text": {"body": "3"}},
        },
    },
    "revoke": {"type": "revoke", "revoke": {"original_message_id": EARLIER}},
    "system": {
        "type": "system",
        "system": {
            "body": "User A changed from 4915112340000 to 4915112349999",
            "new_wa_id": "4915112349999",
            "type": "user_changed_number",
        },
    },
    "call-permission-reply": {
        "type": "interactive",
        "interactive": {
            "type": "call_permission_reply",
            "call_permission_reply": {"response": "accept", "response_source": "user_action"},
        },
    },
}


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub, graph: StandinServer
) -> Iterator[httpx.Client]:
    seed_default_templates(stub)
    with (
        running_gateway(gateway_settings(flowsvc_target, graph.url)) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        yield client


def replies(graph: StandinServer) -> int:
    return len([r for r in graph.standin.accepted() if r.kind == "message"])


def at_quantity(client: httpx.Client, graph: StandinServer) -> None:
    """Walk the customer to the order's quantity question."""
    for step, inbound in enumerate(
        [{"text": "hi"}, {"button": ("new_order", "🛒 New Order")}, {"row": ("coffee", "Coffee")}]
    ):
        assert post_webhook(client, webhook(message(CUSTOMER, **inbound))).status_code == 200
        wait_until(lambda n=step + 1: replies(graph) >= n)


@pytest.mark.parametrize("kind", NO_ANSWER)
def test_a_message_that_needs_no_answer_gets_none_and_the_order_goes_on(
    kind: str, client: httpx.Client, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    at_quantity(client, graph)
    raw = message(CUSTOMER) | NO_ANSWER[kind]
    for _ in range(2):  # Meta redelivers: recorded once either way
        assert post_webhook(client, webhook(raw)).status_code == 200
    assert post_webhook(client, webhook(message(CUSTOMER, text="2"))).status_code == 200

    wait_until(lambda: replies(graph) >= 4)
    sent = [r.body for r in graph.standin.accepted() if r.kind == "message"]
    assert len(sent) == 4  # the menu, the products, the quantity question, pickup or delivery
    assert sent[3]["interactive"]["body"]["text"] == "Pickup or delivery?"
    customer = flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=CUSTOMER)
    conversation = stub.GetConversation(flow_pb2.GetConversationRequest(customer=customer))
    assert conversation.conversation.current_step == "fulfilment"


def test_an_image_mid_flow_still_gets_the_polite_re_ask(
    client: httpx.Client, graph: StandinServer
) -> None:
    at_quantity(client, graph)
    image = message(CUSTOMER) | {
        "type": "image",
        "image": {"id": "1234", "mime_type": "image/jpeg"},
    }

    assert post_webhook(client, webhook(image)).status_code == 200

    wait_until(lambda: replies(graph) >= 5)
    texts = [r.body for r in graph.standin.accepted() if r.kind == "message"][3:]
    assert texts[0]["text"]["body"].startswith("Sorry, I can only read text")
    assert "How many" in texts[1]["text"]["body"]
