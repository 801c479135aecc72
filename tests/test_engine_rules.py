"""advance() rules through small templates made here: taps, typed input, switching, rendering."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from flowsvc.engine import (
    Catalog,
    Decision,
    EngineConfig,
    Facts,
    Inbound,
    Needs,
    Outcome,
    State,
    Template,
    advance,
    limits,
    load_template,
    start as start_template,
)
from tests.engine_calls import CONFIG, NOW, REF, TO, decide as shared_decide
from tests.payloads import load_send


def make(
    name: str,
    menu: dict[str, Any],
    *,
    keywords: tuple[str, ...] = (),
    version: int = 1,
    active: bool = True,
) -> Template:
    return load_template(name, version, menu, trigger_keywords=keywords, is_active=active)


def buttons(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"buttons": [{"type": "reply", "reply": {"id": i, "title": t}} for i, t in pairs]}


def decide(
    catalog: Catalog,
    state: State | None,
    inbound: Inbound,
    *,
    config: EngineConfig = CONFIG,
    facts: Facts | None = None,
    now: datetime = NOW,
) -> Decision:
    return shared_decide(state, inbound, catalog=catalog, config=config, facts=facts, now=now)


def start(
    catalog: Catalog, name: str, step: str = "initial", context: dict[str, Any] | None = None
) -> State:
    template = catalog.current(name)
    assert template is not None
    return State(name, template.version, step, context or {}, (), NOW + timedelta(hours=1), NOW)


def bodies(decision: Decision) -> list[str]:
    return [
        m["text"]["body"] if m["type"] == "text" else m["interactive"]["body"]["text"]
        for m in decision.messages
    ]


SIZES = {
    "type": "list",
    "body": {"text": "Pick a size"},
    "action": {
        "button": "Sizes",
        "sections": [
            {
                "title": "Sizes",
                "rows": [
                    {
                        "id": "s",
                        "title": "Small",
                        "description": "250 ml",
                        "set": {"price": "2.00"},
                    },
                    {
                        "id": "l",
                        "title": "Large",
                        "description": "500 ml",
                        "set": {"price": "3.50"},
                    },
                ],
            }
        ],
    },
    "steps": {
        "initial": {"context_key": "size", "next_step": "milk", "set": {"drink": "latte"}},
        "milk": {
            "type": "button",
            "prompt": "A {size_title} {drink}. Milk?",
            "action": {
                "buttons": [
                    {
                        "type": "reply",
                        "reply": {"id": "oat", "title": "Oat"},
                        "set": {"extra": "0.50"},
                    },
                    {
                        "type": "reply",
                        "reply": {"id": "cow", "title": "Cow", "set": {"extra": "0"}},
                    },
                ]
            },
            "context_key": "milk",
            "compute": {"total": "price + extra"},
            "next_step": "done",
        },
        "done": {
            "prompt": "{size_title} {drink} with {milk_title} milk: {total:money}. Ref {order_id}",
            "end_conversation": True,
        },
    },
}


def test_a_tap_on_a_next_step_step_stores_id_title_and_the_rows_set() -> None:
    catalog = Catalog.build([make("coffee", SIZES)])
    milk = decide(catalog, start(catalog, "coffee"), Inbound(selection_id="l", selection_title="x"))
    assert milk.outcome is Outcome.ADVANCED
    assert milk.state is not None
    assert milk.state.context == {
        "size": "l",
        "size_title": "Large",
        "drink": "latte",
        "price": "3.50",
    }
    assert bodies(milk) == ["A Large latte. Milk?"]
    done = decide(catalog, milk.state, Inbound(selection_id="oat"))
    assert done.outcome is Outcome.COMPLETED
    assert bodies(done) == ["Large latte with Oat milk: $4.00. Ref K7M4Q2"]
    assert done.result is not None
    assert done.result.context["total"] == "4.00"
    assert done.result.context["extra"] == "0.50"


def test_a_set_inside_the_reply_object_is_applied_too() -> None:
    catalog = Catalog.build([make("coffee", SIZES)])
    done = decide(
        catalog,
        start(catalog, "coffee", "milk", {"price": "2.00", "size_title": "Small", "drink": "tea"}),
        Inbound(selection_id="cow"),
    )
    assert done.result is not None
    assert done.result.context["total"] == "2.00"


def test_a_tap_the_step_does_not_offer_is_stale() -> None:
    catalog = Catalog.build([make("coffee", SIZES)])
    state = start(catalog, "coffee", "milk", {"size_title": "Small", "drink": "tea"})
    decision = decide(catalog, state, Inbound(selection_id="s", selection_title="Small"))
    assert decision.outcome is Outcome.STALE_SELECTION
    assert bodies(decision) == ["A Small tea. Milk?"]
    assert decision.state is not None
    assert decision.state.step == "milk"
    assert decision.state.context == state.context


def test_free_text_on_a_step_that_offers_rows_is_rejected_with_the_rows_again() -> None:
    catalog = Catalog.build([make("coffee", SIZES)])
    decision = decide(catalog, start(catalog, "coffee"), Inbound(text="a big one"))
    assert decision.outcome is Outcome.INVALID_INPUT
    assert bodies(decision) == ["Sorry, I didn't understand that. Please try again.", "Pick a size"]


GUIDE_MENU = {
    "type": "button",
    "body": {"text": "Welcome"},
    "action": buttons(("new_order", "New Order"), ("support", "Support"), ("x", "Nowhere")),
    "steps": {
        "initial": {
            "next_steps": {
                "new_order": "order_flow",
                "support": "support_flow",
                "x": "flow:nowhere",
            }
        }
    },
}
SUPPORT = {
    "type": "text",
    "body": {"text": "Support here, {contact_name}. Type your question."},
    "steps": {
        "initial": {"next_step": "thanks", "context_key": "question"},
        "thanks": {
            "prompt": "Thanks! You asked: {question}",
            "end_conversation": True,
            "save_result": False,
        },
    },
}


def guide_catalog() -> Catalog:
    return Catalog.build(
        [
            make("main_menu", GUIDE_MENU, keywords=("hi",)),
            make("support", SUPPORT),
            make("support", SUPPORT, version=2),
        ]
    )


def test_the_guides_name_flow_target_switches_to_the_latest_version_with_previous_selection() -> (
    None
):
    catalog = guide_catalog()
    decision = decide(
        catalog, start(catalog, "main_menu"), Inbound(selection_id="support", contact_name="Ana")
    )
    assert decision.outcome is Outcome.ADVANCED
    assert decision.state is not None
    assert (decision.state.flow, decision.state.version, decision.state.step) == (
        "support",
        2,
        "initial",
    )
    assert decision.state.context == {"previous_selection": "support"}
    assert decision.state.history == (("main_menu", 1, "initial"),)
    assert decision.messages == (
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"preview_url": False, "body": "Support here, Ana. Type your question."},
        },
    )


@pytest.mark.parametrize(
    "option", ["new_order", "x"], ids=["order_flow-names-no-template", "flow-prefix-missing"]
)
def test_a_target_naming_no_template_is_not_available(option: str) -> None:
    catalog = guide_catalog()
    decision = decide(catalog, start(catalog, "main_menu"), Inbound(selection_id=option))
    assert decision.outcome is Outcome.STALE_SELECTION
    assert bodies(decision) == ["That option is not available right now.", "Welcome"]
    assert decision.state is not None
    assert decision.state.flow == "main_menu"


@pytest.mark.parametrize(
    "typed",
    ["{contact_name}", "{0.__class__}", "{question}", "{{x}}", "%s %(x)s", "{order_id:money}"],
    ids=["builtin-name", "format-attack", "self-reference", "double-braces", "percent", "format"],
)
def test_customer_text_is_shown_verbatim_never_expanded(typed: str) -> None:
    catalog = guide_catalog()
    state = start(catalog, "support")
    decision = decide(catalog, state, Inbound(text=typed, contact_name="Ana"))
    assert decision.outcome is Outcome.COMPLETED
    assert bodies(decision) == [f"Thanks! You asked: {typed}"]
    assert decision.result is None


def test_long_customer_text_is_cut_before_it_is_stored() -> None:
    catalog = guide_catalog()
    config = EngineConfig(max_input_chars=50)
    decision = decide(catalog, start(catalog, "support"), Inbound(text="é" * 5000), config=config)
    assert bodies(decision) == ["Thanks! You asked: " + "é" * 50]


def test_a_template_without_steps_still_answers() -> None:
    catalog = Catalog.build(
        [
            make(
                "account",
                {
                    "type": "button",
                    "body": {"text": "Account"},
                    "action": buttons(("p", "Profile")),
                },
            )
        ]
    )
    decision = decide(catalog, start(catalog, "account"), Inbound(selection_id="p"))
    assert decision.outcome is Outcome.STALE_SELECTION
    assert bodies(decision) == ["Account"]


SHAPES = {
    "type": "text",
    "body": {"text": "Start"},
    "steps": {
        "initial": {"next_step": "both"},
        "both": {
            "prompt": "First the prompt",
            "type": "button",
            "header": {"type": "text", "text": "H"},
            "body": {"text": "Then the body"},
            "footer": {"text": "F"},
            "action": buttons(("a", "A")),
            "next_steps": {"a": "text_type"},
        },
        "text_type": {"type": "text", "body": {"text": "Plain {x}"}, "next_step": "end"},
        "end": {"end_conversation": True, "save_result": False},
    },
}


def test_a_step_with_prompt_and_body_sends_two_messages_and_strips_engine_fields() -> None:
    catalog = Catalog.build([make("shapes", SHAPES)])
    both = decide(catalog, start(catalog, "shapes"), Inbound(text="go"))
    first, second = both.messages
    assert first["text"]["body"] == "First the prompt"
    assert second["interactive"] == {
        "type": "button",
        "header": {"type": "text", "text": "H"},
        "body": {"text": "Then the body"},
        "footer": {"text": "F"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]},
    }
    plain = decide(catalog, both.state, Inbound(text="A"))
    assert [m["type"] for m in plain.messages] == ["text"]
    assert bodies(plain) == ["Plain"]
    end = decide(catalog, plain.state, Inbound(text="anything"))
    assert end.outcome is Outcome.COMPLETED
    assert bodies(end) == [CONFIG.completed_text]


@pytest.mark.parametrize(
    ("kind", "sample_name"), [("button", "reply_buttons"), ("list", "list")], ids=["button", "list"]
)
def test_bodies_have_exactly_the_keys_of_metas_examples(kind: str, sample_name: str) -> None:
    sample = load_send(f"interactive_{sample_name}_request")
    catalog = Catalog.build([make("sizes", SIZES), make("shapes", SHAPES)])
    if kind == "list":
        message = decide(catalog, start(catalog, "sizes"), Inbound(selection_id="zzz")).messages[0]
    else:
        message = decide(catalog, start(catalog, "shapes"), Inbound(text="go")).messages[1]
    assert message.keys() == sample.keys()
    assert message["interactive"].keys() <= sample["interactive"].keys()
    action, sample_action = message["interactive"]["action"], sample["interactive"]["action"]
    assert action.keys() == sample_action.keys()
    if kind == "list":
        section, sample_section = action["sections"][0], sample_action["sections"][0]
        assert section.keys() == sample_section.keys()
        assert section["rows"][0].keys() == sample_section["rows"][0].keys()
        assert "set" not in json.dumps(message)
    else:
        button, sample_button = action["buttons"][0], sample_action["buttons"][0]
        assert button.keys() == sample_button.keys()
        assert button["reply"].keys() == sample_button["reply"].keys()


def test_a_text_message_has_metas_text_shape() -> None:
    sample = load_send("text_request")
    message = decide(guide_catalog(), None, Inbound(text="cancel")).messages[0]
    assert message.keys() == sample.keys()
    assert message["text"].keys() == sample["text"].keys()
    assert message["text"]["preview_url"] is False


LONG = {
    "type": "button",
    "header": {"type": "text", "text": "{blob}"},
    "body": {"text": "{blob}"},
    "footer": {"text": "{blob}"},
    "action": buttons(("a", "A")),
    "steps": {
        "initial": {"next_steps": {"a": "list"}},
        "list": {
            "type": "list",
            "prompt": "{blob}",
            "header": {"type": "text", "text": "{blob}"},
            "action": {"button": "Pick", "sections": [{"rows": [{"id": "r", "title": "R"}]}]},
            "next_steps": {"r": "text"},
        },
        "text": {"prompt": "{blob}", "next_step": "text"},
    },
}


def test_rendered_texts_are_truncated_to_metas_limits() -> None:
    catalog = Catalog.build([make("long", LONG)])
    blob = "x" * 10_000
    state = start(catalog, "long", context={"blob": blob})
    again = decide(catalog, state, Inbound(selection_id="zzz")).messages[0]["interactive"]
    assert len(again["header"]["text"]) == limits.MAX_HEADER
    assert len(again["footer"]["text"]) == limits.MAX_FOOTER
    assert again["body"]["text"] == "x" * (limits.MAX_BODY_WITH_BUTTONS - 1) + "…"
    listed = decide(catalog, state, Inbound(selection_id="a"))
    interactive = listed.messages[0]["interactive"]
    assert len(interactive["body"]["text"]) == limits.MAX_BODY_WITH_LIST
    assert interactive["action"]["sections"][0]["title"] == "Pick"
    text = decide(catalog, listed.state, Inbound(selection_id="r"))
    assert len(bodies(text)[0]) == limits.MAX_TEXT_BODY


FORMS = {
    "type": "text",
    "body": {"text": "Form"},
    "expiry_hours": 2,
    "currency": "€",
    "steps": {
        "initial": {"next_step": "check"},
        "check": {
            "prompt": "?",
            "context_key": "value",
            "next_step": "shown",
            "error_message": "Bad {value}.",
        },
        "shown": {
            "prompt": "Got {value} / {value:upper} / {value:lower} / {value:money} / {nothing}.",
            "next_step": "shown",
        },
    },
}


def form(validation: Any = None, compute: dict[str, str] | None = None) -> Catalog:
    menu = json.loads(json.dumps(FORMS))
    if validation is not None:
        menu["steps"]["check"]["validation"] = validation
    if compute is not None:
        menu["steps"]["check"]["compute"] = compute
    return Catalog.build([make("form", menu)])


VALID = [
    ("number", "3", 3),
    ({"type": "integer", "min": -5, "max": 5}, "-5", -5),
    ({"type": "decimal"}, "3,50", "3.50"),
    ({"type": "decimal", "places": 2, "min": 0}, "0.25", "0.25"),
    ("yes_no", "Sí", True),
    ("yes_no", "nope", False),
    ("email", " ana@example.com ", "ana@example.com"),
    ({"type": "regex", "pattern": "[A-Z]{2}\\d{3}", "flags": "i"}, "ab123", "ab123"),
    ({"type": "text", "min_length": 2, "max_length": 5}, "hello", "hello"),
    (None, "anything at all", "anything at all"),
]


@pytest.mark.parametrize(
    ("validation", "typed", "stored"),
    VALID,
    ids=[
        "number",
        "integer-min",
        "decimal-comma",
        "decimal-places",
        "yes-accented",
        "no",
        "email",
        "regex-i",
        "text",
        "none",
    ],
)
def test_valid_typed_input_is_stored_typed(validation: Any, typed: str, stored: Any) -> None:
    catalog = form(validation)
    decision = decide(catalog, start(catalog, "form", "check"), Inbound(text=typed))
    assert decision.outcome is Outcome.ADVANCED
    assert decision.state is not None
    assert decision.state.context["value"] == stored
    assert decision.state.step == "shown"
    assert decision.state.expires_at == NOW + timedelta(hours=2)


INVALID = [
    ("number", "0"),
    ("number", "1.5"),
    ({"type": "integer", "min": 1, "max": 10}, "11"),
    ({"type": "decimal", "places": 1}, "0.25"),
    ({"type": "decimal"}, "1e5"),
    ("yes_no", "perhaps"),
    ("email", "ana@"),
    ({"type": "regex", "pattern": "[A-Z]{2}\\d{3}"}, "ab123"),
    ({"type": "regex", "pattern": "[A-Z]{2}\\d{3}"}, "AB1234"),
    ({"type": "regex", "pattern": "(a+)+$"}, "a" * 5000),
    ({"type": "regex", "pattern": "("}, "("),
    ({"type": "text", "max_length": 3}, "hello"),
    (None, "   "),
]


@pytest.mark.parametrize(
    ("validation", "typed"),
    INVALID,
    ids=[
        "number-zero",
        "number-fraction",
        "integer-max",
        "decimal-places",
        "decimal-exponent",
        "yes_no",
        "email",
        "regex-case",
        "regex-full-match",
        "regex-catastrophic-capped",
        "regex-broken",
        "text-long",
        "blank",
    ],
)
def test_invalid_typed_input_gets_the_error_and_changes_nothing(
    validation: Any, typed: str
) -> None:
    catalog = form(validation)
    state = start(catalog, "form", "check", {"value": "old"})
    decision = decide(catalog, state, Inbound(text=typed))
    assert decision.outcome is Outcome.INVALID_INPUT
    assert bodies(decision) == ["Bad old."]
    assert decision.state is not None
    assert decision.state.context == state.context
    assert decision.state.step == "check"


def test_placeholder_formats_and_unknown_names() -> None:
    catalog = form({"type": "decimal"})
    decision = decide(catalog, start(catalog, "form", "check"), Inbound(text="1234.5"))
    assert bodies(decision) == ["Got 1234.5 / 1234.5 / 1234.5 / €1,234.50 / ."]
    word = decide(form(), start(form(), "form", "check"), Inbound(text="MiXed"))
    assert bodies(word) == ["Got MiXed / MIXED / mixed / MiXed / ."]


@pytest.mark.parametrize(
    ("compute", "typed", "expected"),
    [
        ({"total": "value * 2 + 1"}, "3", "7"),
        ({"total": "(value + 1) * -2"}, "3", "-8"),
        ({"total": "10 / value"}, "3", "3.3333"),
        ({"total": "value * 1.50"}, "2", "3.00"),
        ({"half": "value / 2", "total": "half * 4"}, "5", "10.0"),
    ],
    ids=["precedence", "unary-parens", "division-rounded", "money-scale", "chained"],
)
def test_compute_stores_decimal_strings(compute: dict[str, str], typed: str, expected: str) -> None:
    catalog = form("number", compute)
    decision = decide(catalog, start(catalog, "form", "check"), Inbound(text=typed))
    assert decision.state is not None
    assert decision.state.context["total"] == expected


@pytest.mark.parametrize(
    "compute",
    [
        {"total": "10 / (value - value)"},
        {"total": "missing * 2"},
        {"total": "value ** 2"},
        {"total": "__import__('os')"},
    ],
    ids=["division-by-zero", "missing-name", "power-not-allowed", "code-not-allowed"],
)
def test_a_compute_that_fails_is_invalid_input(compute: dict[str, str]) -> None:
    catalog = form("number", compute)
    state = start(catalog, "form", "check")
    decision = decide(catalog, state, Inbound(text="4"))
    assert decision.outcome is Outcome.INVALID_INPUT
    assert decision.state is not None
    assert decision.state.context == {}


def test_a_loop_onto_the_same_step_does_not_grow_history_and_history_is_capped() -> None:
    catalog = form()
    state = start(catalog, "form", "shown")
    decision = decide(catalog, state, Inbound(text="again"))
    assert decision.state is not None and decision.state.history == ()
    config = EngineConfig(max_history=3)
    deep = State(
        "form",
        1,
        "check",
        {},
        tuple(("form", 1, f"s{i}") for i in range(3)),
        NOW + timedelta(hours=1),
        NOW,
    )
    moved = decide(catalog, deep, Inbound(text="x"), config=config)
    assert moved.state is not None
    assert moved.state.history == (("form", 1, "s1"), ("form", 1, "s2"), ("form", 1, "check"))


def test_back_skips_history_entries_whose_template_is_gone() -> None:
    catalog = form()
    state = State(
        "form",
        1,
        "shown",
        {},
        (("form", 1, "check"), ("deleted", 3, "initial")),
        NOW + timedelta(hours=1),
        NOW,
    )
    decision = decide(catalog, state, Inbound(text="Back"))
    assert decision.outcome is Outcome.WENT_BACK
    assert decision.state is not None
    assert (decision.state.step, decision.state.history) == ("check", ())


def test_a_conversation_on_a_deleted_template_is_handled_as_a_first_message() -> None:
    catalog = guide_catalog()
    state = State("gone", 1, "initial", {}, (), NOW + timedelta(hours=1), NOW)
    decision = decide(catalog, state, Inbound(text="hi"))
    assert decision.outcome is Outcome.STARTED
    assert decision.state is not None and decision.state.flow == "main_menu"


def test_menu_without_a_default_template_keeps_the_conversation() -> None:
    catalog = form()
    state = start(catalog, "form", "check")
    decision = decide(
        catalog, state, Inbound(text="menu"), config=EngineConfig(default_template=None)
    )
    assert decision.outcome is Outcome.HELP
    assert decision.state is not None and decision.state.step == "check"


LOOKUP_FIRST = {
    "type": "text",
    "body": {"text": "Orders: {recent_orders}"},
    "steps": {"initial": {"lookup": "recent_orders", "next_step": "initial"}},
}


def test_a_template_whose_first_step_looks_up_asks_once_then_decides() -> None:
    catalog = Catalog.build([make("mine", LOOKUP_FIRST, keywords=("mine",))])
    needs = advance(
        catalog, None, Inbound(text="mine"), to=TO, now=NOW, config=CONFIG, reference=REF
    )
    assert needs == Needs(reference=None, recent_limit=5, templates=())
    decision = decide(catalog, None, Inbound(text="mine"), facts=Facts())
    assert bodies(decision) == ["Orders: You have no orders yet."]
    assert decision.state is not None
    assert decision.state.context == {"recent_orders": "You have no orders yet."}


def test_command_words_are_configurable() -> None:
    catalog = form()
    config = EngineConfig(
        cancel_words=frozenset({"stopp"}), menu_words=frozenset(), back_words=frozenset()
    )
    state = start(catalog, "form", "check")
    assert (
        decide(catalog, state, Inbound(text="Stopp!"), config=config).outcome is Outcome.CANCELLED
    )
    kept = decide(catalog, state, Inbound(text="cancel"), config=config)
    assert kept.outcome is Outcome.ADVANCED
    assert kept.state is not None and kept.state.context["value"] == "cancel"


def test_start_begins_a_template_with_the_given_context() -> None:
    catalog = guide_catalog()
    decision = start_template(
        catalog, "support", context={"source": "crm"}, to=TO, now=NOW, config=CONFIG, reference=REF
    )
    assert isinstance(decision, Decision)
    assert decision.outcome is Outcome.STARTED
    assert decision.state is not None
    assert (decision.state.flow, decision.state.version) == ("support", 2)
    assert decision.state.context == {"source": "crm"}
    with pytest.raises(ValueError, match="missing or inactive"):
        start_template(catalog, "nowhere", to=TO, now=NOW, config=CONFIG, reference=REF)
