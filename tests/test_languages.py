"""Languages: a template's default language, translations of its texts by field path, its own
texts (cancel, unsupported, expiry, invalid) per language, and the customer's language from
the context key `language` (set by a button) or from a trigger keyword."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowsvc.engine import EngineConfig, Inbound, State
from flowsvc.engine.catalog import Catalog
from flowsvc.engine.template import load_template
from flowsvc.settings import Settings, SettingsError
from flowsvc.validation import validate_template
from menuflow.v1 import flow_pb2_grpc
from tests.engine_calls import CONFIG, NOW, decide
from tests.gateway_harness import (
    gateway_for_template,
    message,
    post_webhook,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer

KEYWORDS = ["coffee", "cafe"]
CAFE: dict[str, Any] = {
    "type": "button",
    "body": {"text": "What would you like, {contact_name}?"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "latte", "title": "Latte"}},
            {"type": "reply", "reply": {"id": "tea", "title": "Tea"}},
            {"type": "reply", "reply": {"id": "es", "title": "Español"}, "set": {"language": "es"}},
        ]
    },
    "steps": {
        "initial": {"next_steps": {"es": "initial"}, "next_step": "qty", "context_key": "drink"},
        "qty": {
            "prompt": "How many {drink_title}?",
            "validation": {"type": "integer", "min": 1, "max": 9},
            "context_key": "qty",
            "error_message": "Send a number from 1 to 9.",
            "next_step": "done",
        },
        "done": {"prompt": "{qty} x {drink_title}, thanks!", "end_conversation": True},
    },
    "language": "en",
    "language_keywords": {"es": ["cafe"]},
    "translations": {
        "es": {
            "body.text": "¿Qué te apetece, {contact_name}?",
            "action.buttons[0].reply.title": "Café con leche",
            "action.buttons[1].reply.title": "Té",
            "steps.qty.prompt": "¿Cuántos {drink_title}?",
            "steps.qty.error_message": "Envía un número del 1 al 9.",
            "steps.done.prompt": "{qty} x {drink_title}, ¡gracias!",
        }
    },
    "texts": {
        "es": {
            "cancelled": "Vale, cancelado.",
            "unsupported": "Lo siento, solo leo textos y toques.",
            "expired": "Tu sesión caducó; empecemos de nuevo.",
        }
    },
}
CATALOG = Catalog.build([load_template("cafe", 1, CAFE, trigger_keywords=KEYWORDS)])


def said(bodies: tuple[dict[str, Any], ...]) -> list[str]:
    """What the customer reads: texts, and interactive bodies with their button titles."""
    shown = []
    for body in bodies:
        if body["type"] == "text":
            shown.append(body["text"]["body"])
        else:
            titles = [b["reply"]["title"] for b in body["interactive"]["action"]["buttons"]]
            shown.append(f"{body['interactive']['body']['text']} {titles}")
    return shown


class Customer:
    def __init__(self) -> None:
        self.state: State | None = None

    def send(self, **message: Any) -> list[str]:
        decision = decide(self.state, Inbound(contact_name="Ana", **message), catalog=CATALOG)
        self.state = decision.state
        return said(decision.messages)


def test_the_bilingual_template_is_valid() -> None:
    assert validate_template("cafe", KEYWORDS, CAFE, known_templates=()) == []


def test_a_spanish_keyword_walks_the_flow_in_spanish() -> None:
    ana = Customer()
    assert ana.send(text="cafe") == ["¿Qué te apetece, Ana? ['Café con leche', 'Té', 'Español']"]
    assert ana.send(text="café con leche") == ["¿Cuántos Café con leche?"]
    assert ana.send(text="lots") == ["Envía un número del 1 al 9."]
    assert ana.send(unsupported_type="sticker") == [
        "Lo siento, solo leo textos y toques.",
        "¿Cuántos Café con leche?",
    ]
    assert ana.send(text="2") == ["2 x Café con leche, ¡gracias!"]


def test_an_english_keyword_speaks_english_until_the_customer_picks_espanol() -> None:
    bob = Customer()
    assert bob.send(text="coffee") == ["What would you like, Ana? ['Latte', 'Tea', 'Español']"]
    assert bob.send(selection_id="es", selection_title="Español") == [
        "¿Qué te apetece, Ana? ['Café con leche', 'Té', 'Español']"
    ]
    assert bob.send(selection_id="tea", selection_title="Té") == ["¿Cuántos Té?"]
    assert bob.send(text="cancel") == ["Vale, cancelado."]


def test_the_expiry_notice_is_in_the_customers_language() -> None:
    ana = Customer()
    ana.send(text="cafe")
    assert ana.state is not None
    ana.state = replace(ana.state, expires_at=NOW - timedelta(minutes=1))
    assert ana.send(text="cafe")[0] == "Tu sesión caducó; empecemos de nuevo."


def translation_problems(**texts: Any) -> list[tuple[str, str]]:
    menu = copy.deepcopy(CAFE)
    menu["translations"]["es"].update(texts)
    found = validate_template("cafe", KEYWORDS, menu, known_templates=())
    return [(v.field, v.description) for v in found]


def test_a_translation_missing_a_placeholder_is_rejected_naming_the_language() -> None:
    assert translation_problems(**{"steps.qty.prompt": "¿Cuántos?"}) == [
        (
            "menu_structure.translations.es.steps.qty.prompt",
            "must keep the placeholders of the es text's original: missing drink_title",
        )
    ]


def test_an_overlong_translated_title_is_rejected_naming_the_language() -> None:
    found = translation_problems(**{"action.buttons[1].reply.title": "Té verde con menta fresca"})
    assert [field for field, _ in found] == [
        "menu_structure.translations.es.action.buttons[1].reply.title"
    ]
    assert "20" in found[0][1]


def test_a_translation_of_no_text_and_a_bad_language_are_rejected() -> None:
    menu = copy.deepcopy(CAFE)
    menu["translations"]["es"]["steps.nope.prompt"] = "x"
    menu["translations"]["Spanish"] = {}
    fields = [v.field for v in validate_template("cafe", KEYWORDS, menu, known_templates=())]
    assert fields == [
        "menu_structure.translations.es.steps.nope.prompt",
        "menu_structure.translations.Spanish",
    ]


def test_a_language_keyword_that_starts_nothing_does_not_stop_a_copy_under_other_keywords() -> None:
    assert validate_template("cafe_copy", ["latte"], CAFE, known_templates=()) == []


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[httpx.Client]:
    with gateway_for_template(stub, flowsvc_target, graph.url, "cafe", KEYWORDS, CAFE) as client:
        yield client


def test_through_the_gateway_a_spanish_customer_is_answered_in_spanish(
    client: httpx.Client, graph: StandinServer
) -> None:
    customer = "16505551234"
    replies: list[str] = []
    for inbound, count in (
        (message(customer, text="cafe"), 1),
        (message(customer, button=("latte", "Café con leche")), 2),
        (message(customer, text="lots"), 3),
        (message(customer, text="cancelar"), 4),  # Spanish's cancel word
        (message(customer, text="cancel"), 5),  # English's is always understood
    ):
        assert post_webhook(client, webhook(inbound)).status_code == 200
        wait_until(lambda n=count: len(graph.standin.accepted()) >= n, 15)
    for record in graph.standin.accepted():
        replies += said((record.body,))
    assert replies == [
        "¿Qué te apetece, Customer 1234? ['Café con leche', 'Té', 'Español']",
        "¿Cuántos Café con leche?",
        "Envía un número del 1 al 9.",
        "Vale, cancelado.",
        'No hay nada que cancelar. Envía "menú" para ver las opciones.',
    ]


def test_a_button_setting_the_language_must_name_a_language_code() -> None:
    menu = copy.deepcopy(CAFE)
    menu["action"]["buttons"][2]["set"] = {"language": "Spanish"}
    found = validate_template("cafe", KEYWORDS, menu, known_templates=())
    assert [v.field for v in found] == ["menu_structure.action.buttons[2].set.language"]
    assert "'Spanish' is not a language code" in found[0].description


def test_a_template_may_word_any_of_menuflows_own_texts_per_language() -> None:
    menu = copy.deepcopy(CAFE)
    menu["texts"]["es"] |= {"completed": "¡Listo!", "not_available": "No disponible."}
    menu["texts"]["es"]["goodbye"] = "Adiós"
    found = validate_template("cafe", KEYWORDS, menu, known_templates=())
    assert [v.field for v in found] == ["menu_structure.texts.es.goodbye"]


def test_the_turn_that_changes_the_language_says_so_and_no_other() -> None:
    first = decide(None, Inbound(text="coffee"), catalog=CATALOG)
    chosen = decide(first.state, Inbound(selection_id="es"), catalog=CATALOG)
    after = decide(chosen.state, Inbound(selection_id="tea"), catalog=CATALOG)
    assert (first.language, chosen.language, after.language) == (None, "es", None)
    assert decide(None, Inbound(text="cafe"), catalog=CATALOG).language == "es"


def test_a_stored_language_and_a_calling_code_rule_start_flows_in_that_language() -> None:
    stored = decide(None, Inbound(text="coffee"), catalog=CATALOG, language="es")
    ruled = decide(
        None,
        Inbound(text="coffee"),
        catalog=CATALOG,
        config=EngineConfig(languages_by_country={"34": "es"}),
        to="34600111222",
    )
    for decision in (stored, ruled):
        assert said(decision.messages) == ["¿Qué te apetece, ? ['Café con leche', 'Té', 'Español']"]
        assert decision.language is None  # nothing new to store


def test_a_text_sets_file_adds_a_language_and_rewords_spanish(tmp_path: Path) -> None:
    path = tmp_path / "texts.json"
    french = {"cancelled": "D'accord, annulé.", "cancel_words": ["annuler"]}
    path.write_text(json.dumps({"fr": french, "es": {"cancelled": "Cancelado."}}))
    sets = Settings.from_env({"FLOWSVC_TEXT_SETS": str(path)}).text_sets
    config = EngineConfig(text_sets=sets)

    assert config.text("fr", "cancelled") == "D'accord, annulé."
    assert config.text("fr", "expired") == CONFIG.expired_text  # not given: English
    assert config.text("es", "cancelled") == "Cancelado."
    assert config.text("es", "expired").startswith("Tu sesión")  # built in, kept
    assert "annuler" in config.commands("fr")[0] and "cancel" in config.commands("fr")[0]
    assert "annuler" not in config.commands("es")[0]


@pytest.mark.parametrize(
    ("content", "named"),
    [
        ({"French": {}}, "'French' is not a language code"),
        ({"fr": {"goodbye": "Au revoir"}}, "fr.goodbye: is not one of help, cancelled"),
        ({"fr": {"cancel_words": "annuler"}}, "fr.cancel_words: must be a list of words"),
        ({"fr": {"expired": ""}}, "fr.expired: must be a text of 1 to 4096 characters"),
    ],
)
def test_a_bad_text_sets_file_stops_flowsvc_naming_what_is_wrong(
    tmp_path: Path, content: dict[str, Any], named: str
) -> None:
    path = tmp_path / "texts.json"
    path.write_text(json.dumps(content))
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FLOWSVC_TEXT_SETS": str(path)})
    assert f"FLOWSVC_TEXT_SETS={path}: " in str(caught.value)
    assert named in str(caught.value)


def test_the_calling_code_rule_takes_the_longest_prefix() -> None:
    rules = Settings.from_env({"FLOWSVC_LANGUAGES_BY_COUNTRY": "1:en, 1787:es, 34:es"})
    config = EngineConfig(languages_by_country=rules.languages_by_country)
    assert [config.language_of(n) for n in ("17875550100", "16505550100", "34600111222")] == [
        "es",
        "en",
        "es",
    ]
    assert config.language_of("491511234567") is None
    with pytest.raises(SettingsError, match="'34=es' is not 'code:language'"):
        Settings.from_env({"FLOWSVC_LANGUAGES_BY_COUNTRY": "34=es"})
