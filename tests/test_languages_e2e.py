"""Languages end to end, on the shipped templates: a customer who picks Español walks the whole
order flow in Spanish through the gateway and the Graph API stand-in (re-ask, unsupported
message, cancel, expiry), and keeps Spanish in every later flow because flowsvc stores it; the
calling-code rule (FLOWSVC_LANGUAGES_BY_COUNTRY); SetLanguage."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat, text_of
from tests.database import execute
from tests.gateway_harness import (
    MAIN_MENU_PHOTO,
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer

CUSTOMER = "447700900123"  # the UK's calling code: no rule for it, so English until chosen
MENU_ES = (
    "👋 ¡Bienvenido a nuestro WhatsApp Business!\n\n¿En qué podemos ayudarte hoy?\n"
    '📅 Para reservar mesa, escribe "reservar". '
    "['🛒 Nuevo pedido', '💬 Ayuda', '👤 Mi cuenta']"
)
MENU_EN = (
    "👋 Welcome to our WhatsApp Business!\n\nHow can we help you today?\n"
    '📅 To book a table, send "book". '
    "['🛒 New Order', '💬 Support', '👤 My Account']"
)
PRODUCTS_ES = (
    "🛒 ¿Qué te gustaría pedir? ['Café', 'Té', 'Zumo natural', 'Sándwich', 'Ensalada', 'Pasta']"
)
HOW_MANY_ES = "¿Cuántos Café quieres? Envía un número del 1 al 99."


def shown(body: dict[str, Any]) -> str:
    """What the customer reads: a text, or an interactive body with its button or row titles."""
    if body["type"] == "text":
        return str(body["text"]["body"])
    interactive = body["interactive"]
    action = interactive["action"]
    if "buttons" in action:
        titles = [b["reply"]["title"] for b in action["buttons"]]
    else:
        titles = [row["title"] for s in action["sections"] for row in s["rows"]]
    return f"{interactive['body']['text']} {titles}"


def sticker(customer: str) -> dict[str, Any]:
    return {
        "from": customer,
        "id": f"wamid.STICKER{time.time_ns()}",
        "timestamp": str(int(time.time())),
        "type": "sticker",
        "sticker": {"id": "1055180919382018", "mime_type": "image/webp", "animated": False},
    }


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[httpx.Client]:
    seed_default_templates(stub)
    with (
        running_gateway(gateway_settings(flowsvc_target, graph.url)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


class Customer:
    """A customer writing through the gateway; `says` returns what the bot answered."""

    def __init__(self, client: httpx.Client, graph: StandinServer, number: str) -> None:
        self.client, self.graph, self.number = client, graph, number

    def sends(self, inbound: dict[str, Any], replies: int) -> list[str]:
        before = len(self.graph.standin.accepted())
        assert post_webhook(self.client, webhook(inbound)).status_code == 200
        wait_until(lambda: len(self.graph.standin.accepted()) >= before + replies, 15)
        return [shown(r.body) for r in self.graph.standin.accepted()[before:]]

    def says(self, text: str, replies: int = 1) -> list[str]:
        return self.sends(message(self.number, text=text), replies)

    def taps(self, button: tuple[str, str], replies: int = 1) -> list[str]:
        return self.sends(message(self.number, button=button), replies)

    def picks(self, row: tuple[str, str], replies: int = 1) -> list[str]:
        return self.sends(message(self.number, row=row), replies)


def test_a_customer_who_picks_espanol_orders_in_spanish_from_start_to_end(
    client: httpx.Client, graph: StandinServer, database_url: str
) -> None:
    ana = Customer(client, graph, CUSTOMER)

    assert ana.says("hi") == [MENU_EN]
    assert ana.says("español") == [MENU_ES]  # the main menu's footer offers it
    menu = graph.standin.accepted()[-1].body["interactive"]
    assert menu["header"] == {"type": "image", "image": {"link": MAIN_MENU_PHOTO}}
    assert menu["footer"] == {"text": 'Escribe "cancelar" cuando quieras · 🌐 English: "english"'}
    assert ana.taps(("new_order", "🛒 Nuevo pedido")) == [PRODUCTS_ES]
    assert ana.picks(("coffee", "Café")) == [HOW_MANY_ES]
    assert ana.says("muchos") == ["Envía un número entero del 1 al 99, por favor."]
    assert ana.sends(sticker(CUSTOMER), 2) == [
        "Lo siento, solo puedo leer mensajes de texto y toques en los botones.",
        HOW_MANY_ES,
    ]
    assert ana.says("2") == ["¿Recoger o a domicilio? ['🏪 Recoger', '🛵 A domicilio']"]
    assert ana.taps(("pickup", "🏪 Recoger")) == [
        "🧾 Tu pedido:\n2 x Café = $7.00\n\n¿Lo confirmo? ['✅ Sí', '❌ No']"
    ]
    [placed] = ana.taps(("yes", "✅ Sí"))
    assert placed.startswith("¡Pedido hecho! Tu número de pedido es ")
    assert placed.endswith(
        '2 x Café = $7.00\n¡Gracias! Escribe "hola" cuando quieras volver a pedir.'
    )

    # The conversation is over; the customer's language is not: flowsvc stored it.
    assert ana.says("cancelar") == ['No hay nada que cancelar. Envía "menú" para ver las opciones.']
    assert ana.says("menú") == [MENU_ES]
    assert ana.taps(("new_order", "🛒 Nuevo pedido")) == [PRODUCTS_ES]
    assert ana.picks(("tea", "Té")) == ["¿Cuántos Té quieres? Envía un número del 1 al 99."]
    assert ana.says("cancelar") == [
        'Vale, cancelado. Envía "menú" cuando quieras empezar de nuevo.'
    ]

    assert ana.says("hi") == [MENU_ES]  # an English greeting does not undo the choice
    execute(database_url, "UPDATE conversation_state SET expires_at = '2020-01-01 00:00:00'")
    assert ana.taps(("new_order", "🛒 Nuevo pedido"), 2) == [
        "Tu sesión anterior caducó, así que empecemos de nuevo.",
        MENU_ES,
    ]
    assert ana.says("english") == [MENU_EN]  # and the footer's way back


def test_the_language_menu_in_account_settings_switches_and_is_kept(
    client: httpx.Client, graph: StandinServer
) -> None:
    bob = Customer(client, graph, "15550002222")
    bob.says("my account")
    [settings] = bob.taps(("settings", "⚙️ Settings"))
    assert settings.endswith("['🇪🇸 Español', '🇬🇧 English', 'Account menu']")

    [ajustes] = bob.taps(("language_es", "🇪🇸 Español"))

    assert ajustes.startswith("⚙️ Ajustes\n")
    assert ajustes.endswith("['🇪🇸 Español', '🇬🇧 English', 'Menú de cuenta']")
    assert bob.says("cancelar") == [
        'Vale, cancelado. Envía "menú" cuando quieras empezar de nuevo.'
    ]
    assert bob.says("hi") == [MENU_ES]


@pytest.fixture
def settings(database_url: str) -> Settings:
    """flowsvc with a calling-code rule: +34 (Spain) and +52 (Mexico) customers get Spanish."""
    return Settings(
        database_url=database_url,
        listen="127.0.0.1:0",
        grace_seconds=1,
        languages_by_country={"34": "es", "52": "es"},
    )


@pytest.mark.usefixtures("seeded")
def test_a_calling_code_rule_speaks_spanish_to_a_customer_from_spain(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    spain, usa = Chat(stub, phone_number="34600111222"), Chat(stub, phone_number="16505550000")

    spain.say("hi")
    usa.say("hi")

    assert spain.texts[0].startswith("👋 ¡Bienvenido")
    assert usa.texts[0].startswith("👋 Welcome")
    spain.say("english")  # a choice beats the rule, and is kept
    spain.say("cancel")
    spain.say("hi")
    assert spain.texts[0].startswith("👋 Welcome")


@pytest.mark.usefixtures("seeded")
def test_set_language_stores_the_customers_language_and_updates_their_conversation(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub, phone_number="4915112345678")
    none_yet = stub.SetLanguage(flow_pb2.SetLanguageRequest(customer=chat.customer, language="es"))
    chat.say("hi")
    assert not none_yet.conversation_updated
    assert text_of(chat.bodies[0]).startswith("👋 ¡Bienvenido")

    running = stub.SetLanguage(flow_pb2.SetLanguageRequest(customer=chat.customer, language="en"))
    chat.tap("new_order")
    assert running.conversation_updated
    assert text_of(chat.bodies[0]) == "🛒 What would you like to order?"

    stub.SetLanguage(flow_pb2.SetLanguageRequest(customer=chat.customer, language=""))
    chat.say("cancel")
    chat.say("cancelar")  # forgotten: English, whose words do not include "cancelar"
    assert chat.last.outcome == flow_pb2.OUTCOME_STARTED


def test_set_language_rejects_what_is_not_a_language_code(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    customer = flow_pb2.Customer(phone_number_id="106540352242922", phone_number="15550001111")
    with pytest.raises(grpc.RpcError) as caught:
        stub.SetLanguage(flow_pb2.SetLanguageRequest(customer=customer, language="Spanish"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "language" in (caught.value.details() or "")


def test_customers_choosing_in_one_webhook_each_keep_their_language(
    client: httpx.Client, graph: StandinServer
) -> None:
    numbers = ["447700900201", "447700900202", "447700900203"]
    said = ["hola", "hi", "español"]
    batch = webhook(*(message(n, text=t) for n, t in zip(numbers, said, strict=True)))
    assert post_webhook(client, batch).status_code == 200  # one HandleMessages call
    wait_until(lambda: len(graph.standin.accepted()) >= 3, 15)

    later = [Customer(client, graph, n).says("menu") for n in numbers]

    assert later == [[MENU_ES], [MENU_EN], [MENU_ES]]


@pytest.mark.usefixtures("seeded")
def test_update_conversation_setting_the_language_keeps_it_for_the_customer(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub, phone_number="4915112340000")
    chat.say("hi")
    request = flow_pb2.UpdateConversationRequest(customer=chat.customer)
    request.context.update({"language": "es"})

    stub.UpdateConversation(request)
    chat.say("cancel")
    chat.say("menu")

    assert text_of(chat.bodies[0]).startswith("👋 ¡Bienvenido")
