"""WhatsApp Flows as a step: the interactive `flow` message built as Meta documents it (its first
screen's data filled from the context), checked at write time and by the Graph API stand-in; the
customer's `nfm_reply` stored in the context and routed on; what is not a Flow reply, or answers
an older Flow message, gets the step again; a reply the gateway cannot read is refused alone."""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from flowsvc.engine import Catalog, Inbound, Outcome, State, load_template
from flowsvc.validation import validate_template
from gateway.payload import parse
from menuflow.chat import render
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.engine_calls import CONFIG, NOW, REF, decide
from tests.gateway_harness import (
    gateway_for_template,
    message,
    post_webhook,
    wait_until,
    webhook,
)
from tests.graph_standin import Invalid, StandinServer, validate
from tests.logcapture import captured_logs

CUSTOMER = "16505551234"
ERROR = "Please use the form: tap Choose a time."

BOOKING: dict[str, Any] = {
    "type": "button",
    "body": {"text": "Book a table?"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "book", "title": "Book"}}]},
    "steps": {
        "initial": {"next_steps": {"book": "party"}},
        "party": {
            "prompt": "How many guests?",
            "validation": "integer",
            "context_key": "party",
            "next_step": "form",
        },
        "form": {
            "type": "flow",
            "header": {"type": "text", "text": "Your table"},
            "body": {"text": "Pick a time for {party} guests, {contact_name}."},
            "footer": {"text": "Takes a minute"},
            "action": {
                "name": "flow",
                "parameters": {
                    "flow_message_version": "3",
                    "flow_id": "1234567890",
                    "flow_cta": "Choose a time",
                    "flow_action": "navigate",
                    "flow_action_payload": {
                        "screen": "BOOKING",
                        "data": {"guests": "{party}", "greeting": "Hi {contact_name}"},
                    },
                    "mode": "draft",
                },
            },
            "error_message": ERROR,
            "context_key": "booking",
            "flow_fields": ["slot", "seating"],
            "rules": [{"when": "seating == 'terrace'", "go": "terrace"}],
            "next_step": "inside",
        },
        "terrace": {"prompt": "Terrace at {slot}, booked.", "end_conversation": True},
        "inside": {"prompt": "A table inside at {slot}, booked.", "end_conversation": True},
    },
    "translations": {
        "es": {
            "steps.form.header.text": "Tu mesa",
            "steps.form.body.text": "Elige una hora para {party} personas, {contact_name}.",
            "steps.form.action.parameters.flow_cta": "Elegir hora",
        }
    },
}


def problems(menu: dict[str, Any]) -> list[tuple[str, str]]:
    found = validate_template("booking", ["book"], menu, known_templates=())
    return [(v.field, v.description) for v in found if not v.warning]


def with_parameters(**changes: Any) -> dict[str, Any]:
    """BOOKING with the form's action.parameters changed (None removes a parameter)."""
    menu = copy.deepcopy(BOOKING)
    parameters = menu["steps"]["form"]["action"]["parameters"]
    for key, value in changes.items():
        if value is None:
            parameters.pop(key, None)
        else:
            parameters[key] = value
    return menu


def test_the_booking_template_is_valid() -> None:
    assert problems(BOOKING) == []


PARAMETERS = "menu_structure.steps.form.action.parameters"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"flow_cta": "Choose your time slot"}, f"{PARAMETERS}.flow_cta", "at most 20"),
        ({"flow_cta": "Book 📅"}, f"{PARAMETERS}.flow_cta", "emoji"),
        ({"flow_cta": None}, f"{PARAMETERS}.flow_cta", "is missing"),
        ({"flow_id": None}, f"{PARAMETERS}.flow_id", "flow_id or by flow_name"),
        ({"flow_name": "booking_flow"}, f"{PARAMETERS}.flow_id", "both set"),
        ({"flow_token": "abc"}, f"{PARAMETERS}.flow_token", "made by menuflow"),
        ({"flow_message_version": "2"}, f"{PARAMETERS}.flow_message_version", '"3"'),
        ({"flow_action": "navigation"}, f"{PARAMETERS}.flow_action", "'navigate'"),
        ({"flow_action_payload": None}, f"{PARAMETERS}.flow_action_payload", "is required"),
        ({"flow_action": "data_exchange"}, f"{PARAMETERS}.flow_action_payload", "only with"),
        (
            {"flow_action_payload": {"screen": "BOOKING", "data": {}}},
            f"{PARAMETERS}.flow_action_payload.data",
            "non-empty",
        ),
        (
            {"flow_action_payload": {"data": {"a": 1}}},
            f"{PARAMETERS}.flow_action_payload.screen",
            "is missing",
        ),
        (
            {"flow_action_payload": {"screen": "BOOKING", "data": {"when": "{dat}"}}},
            f"{PARAMETERS}.flow_action_payload.data.when",
            "{dat}",
        ),
        ({"mode": "test"}, f"{PARAMETERS}.mode", "'draft' or 'published'"),
    ],
)
def test_a_broken_flow_message_is_rejected_with_its_path(
    changes: dict[str, Any], field: str, words: str
) -> None:
    found = problems(with_parameters(**changes))
    assert any(where == field and words in what for where, what in found), found


def test_a_flow_step_waits_for_its_reply_and_keeps_fields_by_valid_names() -> None:
    menu = copy.deepcopy(BOOKING)
    menu["steps"]["form"]["end_conversation"] = True
    menu["steps"]["form"]["flow_fields"] = ["slot", "Seating"]
    found = problems(menu)
    assert any(
        where == "menu_structure.steps.form.end_conversation" and "waits for its reply" in what
        for where, what in found
    ), found
    assert any(where == "menu_structure.steps.form.flow_fields[1]" for where, _ in found), found


def test_a_data_exchange_flow_needs_no_first_screen() -> None:
    menu = with_parameters(flow_action="data_exchange", flow_action_payload=None)
    assert problems(menu) == []


def test_an_overlong_translated_cta_is_rejected_naming_the_language() -> None:
    menu = copy.deepcopy(BOOKING)
    menu["translations"]["es"]["steps.form.action.parameters.flow_cta"] = "Elegir la hora y la mesa"
    assert problems(menu) == [
        (
            "menu_structure.translations.es.steps.form.action.parameters.flow_cta",
            "is 24 characters long; WhatsApp allows at most 20",
        )
    ]


# The engine, without I/O: what a customer in the booking flow is sent, and what their reply does.

CATALOG = Catalog.build([load_template("booking", 1, BOOKING)])


def waiting(step: str, context: dict[str, Any]) -> State:
    return State("booking", 1, step, context, (), NOW + CONFIG.expiry, NOW)


def flow_reply(token: str, **fields: Any) -> Inbound:
    return Inbound(unsupported_type="flow", flow_token=token, attachment=fields)


def test_the_flow_is_sent_with_its_first_screens_data_from_the_context() -> None:
    decision = decide(waiting("party", {}), Inbound(text="4", contact_name="Ada"), catalog=CATALOG)
    [sent] = decision.messages
    assert sent["interactive"] == {
        "type": "flow",
        "header": {"type": "text", "text": "Your table"},
        "body": {"text": "Pick a time for 4 guests, Ada."},
        "footer": {"text": "Takes a minute"},
        "action": {
            "name": "flow",
            "parameters": {
                "flow_message_version": "3",
                "flow_token": REF,
                "flow_id": "1234567890",
                "flow_cta": "Choose a time",
                "flow_action": "navigate",
                # A placeholder alone keeps the value's type (the Flow declares a number).
                "flow_action_payload": {
                    "screen": "BOOKING",
                    "data": {"guests": 4, "greeting": "Hi Ada"},
                },
                "mode": "draft",
            },
        },
    }
    assert validate(sent) == "message"
    assert decision.state is not None
    assert decision.state.context == {"party": 4, "flow_token": REF}
    shown, options = render(sent)  # as `make chat` prints it
    assert "[ Choose a time ] (WhatsApp Flow 1234567890 BOOKING)" in shown and options == []


def test_a_spanish_customer_gets_the_flow_in_spanish() -> None:
    decision = decide(
        waiting("party", {"language": "es"}), Inbound(text="2", contact_name="Ana"), catalog=CATALOG
    )
    [sent] = decision.messages
    assert sent["interactive"]["header"]["text"] == "Tu mesa"
    assert sent["interactive"]["body"]["text"] == "Elige una hora para 2 personas, Ana."
    assert sent["interactive"]["action"]["parameters"]["flow_cta"] == "Elegir hora"


FORM = {"party": 4, "flow_token": "T0KEN1"}


def test_the_flow_reply_is_stored_and_routed_on() -> None:
    reply = flow_reply("T0KEN1", slot="19:30", seating="terrace", notes="Window")
    decision = decide(waiting("form", FORM), reply, catalog=CATALOG)
    assert decision.outcome == Outcome.COMPLETED
    assert [m["text"]["body"] for m in decision.messages] == ["Terrace at 19:30, booked."]
    assert decision.result is not None
    context = decision.result.context
    assert context["booking"] == {"slot": "19:30", "seating": "terrace", "notes": "Window"}
    assert (context["slot"], context["seating"]) == ("19:30", "terrace")
    inside = decide(waiting("form", FORM), flow_reply("T0KEN1", slot="20:00"), catalog=CATALOG)
    assert [m["text"]["body"] for m in inside.messages] == ["A table inside at 20:00, booked."]


@pytest.mark.parametrize("token", ["OLDER1", ""])
def test_a_reply_to_an_older_flow_message_gets_the_step_again(token: str) -> None:
    decision = decide(waiting("form", FORM), flow_reply(token, slot="19:30"), catalog=CATALOG)
    assert decision.outcome == Outcome.STALE_SELECTION
    [again] = decision.messages
    assert again["interactive"]["action"]["parameters"]["flow_token"] == "T0KEN1"
    assert decision.state is not None and decision.state.context == FORM


def test_text_where_a_flow_reply_is_expected_gets_the_error_and_the_flow_again() -> None:
    decision = decide(waiting("form", FORM), Inbound(text="7pm please"), catalog=CATALOG)
    assert decision.outcome == Outcome.INVALID_INPUT
    error, again = decision.messages
    assert error["text"]["body"] == ERROR
    assert again["interactive"]["type"] == "flow"
    assert decision.state is not None and decision.state.step == "form"


def test_a_flow_reply_where_none_is_expected_gets_the_polite_reask() -> None:
    decision = decide(waiting("party", {}), flow_reply("T0KEN1", slot="1"), catalog=CATALOG)
    assert decision.outcome == Outcome.UNSUPPORTED
    notice, again = decision.messages
    assert notice["text"]["body"] == CONFIG.unsupported_text
    assert again["text"]["body"] == "How many guests?"


# The Graph API stand-in refuses what Meta refuses.

GOOD_PARAMETERS = {
    "flow_message_version": "3",
    "flow_token": "T",
    "flow_id": "1",
    "flow_cta": "Book",
    "flow_action_payload": {"screen": "S"},
}


@pytest.mark.parametrize(
    "changes",
    [
        {"flow_message_version": "2"},
        {"flow_cta": "x" * 21},
        {"flow_cta": "Book 📅"},
        {"flow_name": "also"},
        {"flow_action": "data_exchange"},
        {"flow_action_payload": {"screen": "S", "data": {}}},
        {"mode": "test"},
        {"flow_token": None},
    ],
)
def test_the_standin_rejects_a_flow_message_meta_rejects(changes: dict[str, Any]) -> None:
    parameters = {**GOOD_PARAMETERS, **changes}
    parameters = {k: v for k, v in parameters.items() if v is not None}
    body = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "interactive",
        "interactive": {
            "type": "flow",
            "body": {"text": "Book"},
            "action": {"name": "flow", "parameters": parameters},
        },
    }
    good = copy.deepcopy(body)
    good["interactive"]["action"]["parameters"] = GOOD_PARAMETERS
    assert validate(good) == "message"
    with pytest.raises(Invalid):
        validate(body)


# The gateway reads nfm_reply by its documented types, item by item.


def nfm(response_json: Any, *, name: str = "flow", message_id: str = "") -> dict[str, Any]:
    """An inbound Flow reply as Meta's webhook carries it."""
    return {
        "from": CUSTOMER,
        "id": message_id or f"wamid.NFM{time.monotonic_ns()}",
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {
            "type": "nfm_reply",
            "nfm_reply": {"name": name, "body": "Sent", "response_json": response_json},
        },
    }


@pytest.mark.parametrize(
    ("response_json", "reason"),
    [
        ("{not json", "is not JSON"),
        ('["a list"]', "JSON list, not an object"),
        ('{"flow_token": "T", "n": NaN}', "is not JSON: NaN"),
        ({"flow_token": "T"}, "not a string"),
        (None, "missing or not a string"),
        ('{"a": "' + "x" * 70_000 + '"}', "longer than 65536"),
    ],
)
def test_a_malformed_response_is_refused_alone(response_json: Any, reason: str) -> None:
    bad = nfm(response_json, message_id="wamid.BAD1")
    parsed = parse(webhook(message(CUSTOMER, text="hi"), bad, nfm('{"flow_token": "T"}')))
    assert [m.WhichOneof("content") for m in parsed.messages] == ["text", "flow_reply"]
    assert parsed.skipped == 1
    [(message_id, why)] = parsed.refused
    assert message_id == "wamid.BAD1" and reason in why, why


def test_what_can_be_repaired_is_repaired() -> None:
    fields = {
        "flow_token": "T",
        "big": 2**60,
        "deep": {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}},
        "long": "x" * 5000,
        "many": list(range(150)),
        "ok": "fine",
    }
    [reply] = parse(webhook(nfm(json.dumps(fields)))).messages
    response = json_format.MessageToDict(reply.flow_reply.response)
    assert reply.flow_reply.flow_token == "T"
    assert response["big"] == str(2**60)  # kept exactly, as text
    assert "long" not in response and response["ok"] == "fine"
    assert len(response["many"]) == 100
    assert response["deep"] == {"a": {"b": {"c": {"d": {}}}}}


def test_another_native_flow_reply_is_an_unsupported_type() -> None:
    [address] = parse(webhook(nfm('{"city": "X"}', name="address_message"))).messages
    assert address.unsupported_type == "nfm_reply"


# End to end: the gateway, flowsvc (SQLite or PostgreSQL) and the Graph API stand-in.


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[httpx.Client]:
    with gateway_for_template(
        stub, flowsvc_target, graph.url, "booking", ["book"], BOOKING
    ) as client:
        yield client


def send(client: httpx.Client, graph: StandinServer, *inbound: Any, replies: int) -> list[Any]:
    """Post inbound messages in one webhook; the bodies of the `replies` they get."""
    before = len(graph.standin.accepted())
    assert post_webhook(client, webhook(*inbound)).status_code == 200
    wait_until(lambda: len(graph.standin.accepted()) >= before + replies, 15)
    return [r.body for r in graph.standin.accepted()[before:]]


def test_a_customer_books_through_a_flow(
    client: httpx.Client, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    send(client, graph, message(CUSTOMER, text="book"), replies=1)
    send(client, graph, message(CUSTOMER, button=("book", "Book")), replies=1)
    [form] = send(client, graph, message(CUSTOMER, text="4"), replies=1)
    parameters = form["interactive"]["action"]["parameters"]
    assert form["interactive"]["body"] == {"text": "Pick a time for 4 guests, Customer 1234."}
    assert parameters["flow_action_payload"] == {
        "screen": "BOOKING",
        "data": {"guests": 4, "greeting": "Hi Customer 1234"},
    }
    token = parameters["flow_token"]
    # Typed text where the form is expected: the step's error and the form again.
    error, again = send(client, graph, message(CUSTOMER, text="7pm"), replies=2)
    assert error["text"]["body"] == ERROR
    assert again["interactive"]["action"]["parameters"]["flow_token"] == token
    # A reply to another Flow message (another token): the form again, nothing stored.
    [stale] = send(client, graph, nfm('{"flow_token": "OLD", "slot": "9"}'), replies=1)
    assert stale["interactive"]["type"] == "flow"
    response = {"flow_token": token, "slot": "19:30", "seating": "terrace", "guests": 4}
    [done] = send(client, graph, nfm(json.dumps(response)), replies=1)
    assert done["text"]["body"] == "Terrace at 19:30, booked."
    [result] = stub.ListResults(flow_pb2.ListResultsRequest()).results
    context = json_format.MessageToDict(result.context)
    assert context["booking"] == {"slot": "19:30", "seating": "terrace", "guests": 4}
    assert (context["slot"], context["seating"]) == ("19:30", "terrace")


def test_a_malformed_flow_reply_is_refused_and_logged_while_the_rest_is_answered(
    client: httpx.Client, graph: StandinServer
) -> None:
    with captured_logs(logging.INFO) as logs:
        bad = nfm("{broken", message_id="wamid.BROKEN1")
        [hello] = send(client, graph, bad, message(CUSTOMER, text="book"), replies=1)
    assert hello["interactive"]["body"] == {"text": "Book a table?"}
    [refused] = logs.named("webhook.message_refused")
    assert refused["message_id"] == "wamid.BROKEN1"
    assert "nfm_reply.response_json is not JSON" in refused["reason"]
