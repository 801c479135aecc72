"""No phone number in any log line of either service, at DEBUG, Meta's message ids included: a
wamid is base64 of a record that holds the customer's number, so every id-looking token in the
logs is decoded and searched too."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Iterator

import httpx
import pytest

from menuflow.v1 import flow_pb2_grpc
from tests.gateway_harness import (
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import Received, StandinServer, meta_message_id
from tests.logcapture import captured_logs

CUSTOMERS = ("4915112345678", "16505550199", "5511998877665")
WALK = [
    {"text": "hi"},
    {"button": ("new_order", "🛒 New Order")},
    {"row": ("coffee", "Coffee")},
    {"text": "2"},
    {"button": ("yes", "✅ Yes")},
]
# Long runs of base64 (a wamid's tail, or one cut out of a longer token).
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def decoded_tokens(text: str) -> Iterator[bytes]:
    """Every base64-looking run in `text`, decoded from each of the four offsets a cut token
    may start at (either alphabet)."""
    for match in _BASE64.finditer(text):
        token = match.group().rstrip("=")
        for start in range(4):
            part = token[start:]
            part = part[: len(part) - len(part) % 4]
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    yield decode(part)
                except (binascii.Error, ValueError):
                    continue


def replies(graph: StandinServer) -> list[Received]:
    return [r for r in graph.standin.accepted() if r.kind == "message"]


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


def test_no_number_is_logged_even_inside_a_message_id(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub, graph: StandinServer
) -> None:
    seed_default_templates(stub)
    settings = gateway_settings(flowsvc_target, graph.url, mark_as_read=True)
    graph.standin.fail(code=131000, count=2)  # warning lines for retried sends, with their ids
    with (
        captured_logs(logging.DEBUG) as logs,
        running_gateway(settings) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        for step, inbound in enumerate(WALK):
            for n, customer in enumerate(CUSTOMERS):
                wamid = meta_message_id(customer, f"IN{step}{n}{'0' * 18}")
                document = webhook(message(customer, message_id=wamid, **inbound))
                assert post_webhook(client, document).status_code == 200
            wait_until(lambda s=step: len(replies(graph)) >= (s + 1) * len(CUSTOMERS), timeout=30)
        sent = replies(graph)
        statuses = [
            {
                "id": r.wa_message_id,
                "status": "failed",
                "recipient_id": r.body["to"],
                "timestamp": "1700000000",
                "errors": [{"code": 131026, "title": "Undeliverable"}],
            }
            for r in sent[:3]
        ]
        document = webhook()
        document["entry"][0]["changes"][0]["value"] |= {"statuses": statuses, "messages": []}
        assert post_webhook(client, document).status_code == 200

    text = logs.text
    assert "wamid." not in text
    assert any(e["event"] == "message handled" for e in logs.events)
    assert any(e["event"].startswith("send.") for e in logs.events)
    for customer in CUSTOMERS:
        assert customer not in text
        assert customer[-8:] not in text  # nor a long enough piece of it
        for raw in decoded_tokens(text):
            assert customer.encode() not in raw, raw
