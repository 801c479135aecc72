"""Location requests and call-to-action URL buttons: built as Meta documents them, checked at
write time, accepted by the Graph API stand-in; URL placeholders are filled percent-encoded."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowsvc.validation import validate_template
from menuflow.v1 import flow_pb2_grpc
from tests.gateway_harness import (
    gateway_for_template,
    message,
    post_webhook,
    wait_until,
    webhook,
)
from tests.graph_standin import Invalid, StandinServer, validate

CUSTOMER = "16505551234"

DELIVERY: dict[str, Any] = {
    "type": "button",
    "body": {"text": "Ready to order?"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "go", "title": "Deliver it"}}]},
    "steps": {
        "initial": {"next_steps": {"go": "where"}},
        "where": {
            "type": "location_request_message",
            "prompt": "Where should we deliver, {contact_name}?",
            "accept": ["location"],
            "context_key": "place",
            "next_step": "note",
        },
        "note": {"prompt": "Any note for the driver?", "context_key": "note", "next_step": "pay"},
        "pay": {
            "type": "cta_url",
            "header": {"type": "image", "image": {"link": "https://cdn.example.com/pay.png"}},
            "body": {"text": "Delivering to {note}. Pay on our site:"},
            "footer": {"text": "Secure payment"},
            "action": {
                "name": "cta_url",
                "parameters": {
                    "display_text": "Pay now",
                    "url": "https://pay.example.com/checkout/{note}?who={contact_name}",
                },
            },
            "end_conversation": True,
            "save_result": False,
        },
    },
}


def problems(menu: dict[str, Any]) -> list[tuple[str, str]]:
    found = validate_template("delivery", ["deliver"], menu, known_templates=())
    return [(v.field, v.description) for v in found if not v.warning]


def edited(step: str, key: str, value: Any) -> dict[str, Any]:
    menu = copy.deepcopy(DELIVERY)
    menu["steps"][step][key] = value
    return menu


def test_the_delivery_template_is_valid() -> None:
    assert problems(DELIVERY) == []


def cta(**parameters: Any) -> dict[str, Any]:
    return {"name": "cta_url", "parameters": parameters}


@pytest.mark.parametrize(
    ("step", "key", "value", "field", "words"),
    [
        (
            "pay",
            "action",
            cta(display_text="Pay now on our website", url="https://x.io"),
            "parameters.display_text",
            "at most 20",
        ),
        ("pay", "action", cta(display_text="Pay", url="ftp://x.io"), "parameters.url", "http(s)"),
        (
            "pay",
            "action",
            cta(display_text="Pay", url="https://{note}.example.com/"),
            "parameters.url",
            "host",
        ),
        (
            "pay",
            "action",
            cta(display_text="Pay", url="https://x.io/{nope}"),
            "parameters.url",
            "{nope}",
        ),
        (
            "pay",
            "action",
            {"name": "cta", "parameters": {"display_text": "Pay", "url": "https://x.io"}},
            "action.name",
            "'cta_url'",
        ),
        ("pay", "body", {"text": "x" * 1025}, "pay.body.text", "1024"),
        ("where", "footer", {"text": "hi"}, "where.footer", "body only"),
        ("where", "action", {"name": "send_place"}, "where.action", "send_location"),
    ],
)
def test_a_broken_location_request_or_url_button_is_rejected(
    step: str, key: str, value: Any, field: str, words: str
) -> None:
    found = problems(edited(step, key, value))
    assert any(field in where and words in what for where, what in found), found


@pytest.mark.parametrize(
    "interactive",
    [
        {
            "type": "location_request_message",
            "body": {"text": "Where?"},
            "action": {"name": "send_location"},
            "footer": {"text": "no"},
        },
        {"type": "location_request_message", "body": {"text": "Where?"}, "action": {"name": "x"}},
        {
            "type": "cta_url",
            "body": {"text": "Pay"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "x" * 21, "url": "https://a.io"},
            },
        },
        {
            "type": "cta_url",
            "body": {"text": "Pay"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "Pay", "url": "not a url"},
            },
        },
    ],
)
def test_the_standin_rejects_what_meta_rejects(interactive: dict[str, Any]) -> None:
    body = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "interactive",
        "interactive": interactive,
    }
    with pytest.raises(Invalid):
        validate(body)


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[httpx.Client]:
    with gateway_for_template(
        stub, flowsvc_target, graph.url, "delivery", ["deliver"], DELIVERY
    ) as client:
        yield client


def send(client: httpx.Client, graph: StandinServer, inbound: dict[str, Any]) -> dict[str, Any]:
    before = len(graph.standin.accepted())
    assert post_webhook(client, webhook(inbound)).status_code == 200
    wait_until(lambda: len(graph.standin.accepted()) > before, 15)
    return graph.standin.accepted()[-1].body


def test_a_customer_is_asked_for_a_location_then_gets_a_payment_link(
    client: httpx.Client, graph: StandinServer
) -> None:
    send(client, graph, message(CUSTOMER, text="deliver"))
    asked = send(client, graph, message(CUSTOMER, button=("go", "Deliver it")))
    assert asked["interactive"] == {
        "type": "location_request_message",
        "body": {"text": "Where should we deliver, Customer 1234?"},
        "action": {"name": "send_location"},
    }
    location = {
        "from": CUSTOMER,
        "id": f"wamid.LOC{time.monotonic_ns()}",
        "timestamp": str(int(time.time())),
        "type": "location",
        "location": {"latitude": 52.52, "longitude": 13.405},
    }
    assert send(client, graph, location)["text"]["body"] == "Any note for the driver?"
    paid = send(client, graph, message(CUSTOMER, text="gate 4/b?x=1&y"))
    assert paid["interactive"] == {
        "type": "cta_url",
        "header": {"type": "image", "image": {"link": "https://cdn.example.com/pay.png"}},
        "body": {"text": "Delivering to gate 4/b?x=1&y. Pay on our site:"},
        "footer": {"text": "Secure payment"},
        "action": {
            "name": "cta_url",
            "parameters": {
                "display_text": "Pay now",
                # The customer's words stay one path segment: they cannot change host or query.
                "url": "https://pay.example.com/checkout/gate%204%2Fb%3Fx%3D1%26y"
                "?who=Customer%201234",
            },
        },
    }
