"""Gateway test helpers: a real uvicorn gateway on loopback, and signed webhooks to send it."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from google.protobuf import struct_pb2

from flowsvc.seed import DEFAULT_TEMPLATES
from gateway.app import create_app
from gateway.serving import uvicorn_options
from gateway.settings import Settings
from gateway.signature import sign
from gateway.transport import Transport
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.graph_standin import ServerThread

APP_SECRET = "test-app-secret"
VERIFY_TOKEN = "test-verify-token"
ACCESS_TOKEN = "test-access-token"
BUSINESS = "106540352242922"
_ids = itertools.count(1)


def gateway_settings(flowsvc_target: str, graph_url: str, **overrides: Any) -> Settings:
    """Settings for a test gateway: fast polling, short grace, real secrets."""
    options: dict[str, Any] = {
        "app_secret": APP_SECRET,
        "verify_token": VERIFY_TOKEN,
        "access_token": ACCESS_TOKEN,
        "flowsvc_target": flowsvc_target,
        "graph_api_url": graph_url,
        "outbox_poll_seconds": 0.1,
        "shutdown_grace_seconds": 2.0,
        "flowsvc_timeout_seconds": 5.0,
        "graph_timeout_seconds": 2.0,
        "outbox_lease_seconds": 30,
        "mark_as_read": False,
    }
    return Settings(**(options | overrides))


@contextmanager
def running_gateway(
    settings: Settings, transport: Transport | None = None
) -> Iterator[ServerThread]:
    """The gateway app served by a real uvicorn (httptools) on a free loopback port."""
    app = create_app(settings, transport=transport)
    with ServerThread(app, **uvicorn_options(settings)) as server:
        yield server


def signed(document: Any, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return body, {"Content-Type": "application/json", "X-Hub-Signature-256": sign(secret, body)}


def post_webhook(client: httpx.Client, document: Any) -> httpx.Response:
    body, headers = signed(document)
    return client.post("/webhook", content=body, headers=headers)


def message(
    customer: str,
    *,
    text: str | None = None,
    button: tuple[str, str] | None = None,
    row: tuple[str, str] | None = None,
    timestamp: int | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """One inbound message as Meta sends it: text, a reply-button tap or a list-row tap."""
    raw: dict[str, Any] = {
        "from": customer,
        "id": message_id or f"wamid.TEST{next(_ids):08d}",
        "timestamp": str(timestamp if timestamp is not None else int(time.time())),
    }
    if text is not None:
        raw |= {"type": "text", "text": {"body": text}}
    elif button is not None:
        reply = {"type": "button_reply", "button_reply": {"id": button[0], "title": button[1]}}
        raw |= {"type": "interactive", "interactive": reply}
    elif row is not None:
        reply = {"type": "list_reply", "list_reply": {"id": row[0], "title": row[1]}}
        raw |= {"type": "interactive", "interactive": reply}
    return raw


def webhook(*messages: dict[str, Any], business: str = BUSINESS) -> dict[str, Any]:
    """A webhook POST body holding `messages` (one change; contacts for every sender)."""
    senders = sorted({m["from"] for m in messages})
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": business},
        "contacts": [{"profile": {"name": f"Customer {s[-4:]}"}, "wa_id": s} for s in senders],
        "messages": list(messages),
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; return it, or fail with AssertionError at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def seed_default_templates(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    """Load the shipped templates (main_menu, new_order, support, account, booking) through the
    API."""
    definitions = []
    for path in sorted(DEFAULT_TEMPLATES.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        structure = struct_pb2.Struct()
        structure.update(data["menu_structure"])
        definitions.append(
            flow_pb2.TemplateDefinition(
                name=data["name"],
                trigger_keywords=data.get("trigger_keywords", []),
                menu_structure=structure,
            )
        )
    stub.ImportTemplates(flow_pb2.ImportTemplatesRequest(templates=definitions))


MAIN_MENU_PHOTO = "https://upload.wikimedia.org/wikipedia/commons/4/45/A_small_cup_of_coffee.JPG"


def main_menu(to: str) -> dict[str, Any]:
    """The Graph API body of the shipped main menu, sent to `to`."""
    body = (
        "👋 Welcome to our WhatsApp Business!\n\nHow can we help you today?\n"
        '📅 To book a table, send "book".'
    )
    buttons = [
        {"type": "reply", "reply": {"id": "new_order", "title": "🛒 New Order"}},
        {"type": "reply", "reply": {"id": "support", "title": "💬 Support"}},
        {"type": "reply", "reply": {"id": "account", "title": "👤 My Account"}},
    ]
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "image", "image": {"link": MAIN_MENU_PHOTO}},
            "body": {"text": body},
            "footer": {"text": 'Reply "cancel" at any time · 🌐 Español: "hola"'},
            "action": {"buttons": buttons},
        },
    }


@contextmanager
def gateway_for_template(
    stub: flow_pb2_grpc.FlowServiceStub,
    flowsvc_target: str,
    graph_url: str,
    name: str,
    keywords: list[str],
    menu: dict[str, Any],
) -> Iterator[httpx.Client]:
    """Template `name` (active, with `keywords`) created in flowsvc, and a client of a real
    gateway in front of it that sends to the Graph API at `graph_url`."""
    definition = flow_pb2.TemplateDefinition(name=name, trigger_keywords=keywords)
    definition.menu_structure.update(menu)
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition))
    with running_gateway(gateway_settings(flowsvc_target, graph_url)) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client
