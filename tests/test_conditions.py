"""Steps that route on the context with `rules`: the condition language, the engine (pure),
validation, and one conversation through a real flowsvc."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from flowsvc.engine import Catalog, Inbound, Outcome, State, load_template
from flowsvc.engine.expressions import ExpressionError, evaluate, holds, names
from flowsvc.validation import validate_template
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.engine_calls import CONFIG, NOW, decide
from tests.test_templates import struct

BOOKING: dict[str, Any] = {
    "type": "text",
    "body": {"text": "How many guests?"},
    "steps": {
        "initial": {
            "validation": {"type": "integer", "min": 1, "max": 50},
            "context_key": "guests",
            "error_message": "Please send a number of guests.",
            "next_step": "check_party",
        },
        "check_party": {
            "rules": [
                {"when": "guests > 8", "go": "large_party"},
                {"when": "guests == 1", "go": "seat"},
            ],
            "next_step": "name",
        },
        "seat": {
            "type": "button",
            "body": {"text": "A table for one: where would you like to sit?"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "bar", "title": "At the bar"}},
                    {"type": "reply", "reply": {"id": "window", "title": "By the window"}},
                ]
            },
            "context_key": "seat",
            "rules": [{"when": "seat == 'bar' and not vip", "go": "bar_note"}],
            "next_step": "name",
        },
        "bar_note": {"prompt": "The bar seats fill fast: come early!", "end_conversation": True},
        "large_party": {
            "prompt": "For more than 8 guests our events team will call you. Thank you!",
            "end_conversation": True,
            "save_result": False,
        },
        "name": {
            "prompt": "Under what name?",
            "validation": {"type": "text", "max_length": 40},
            "context_key": "booking_name",
            "next_step": "done",
        },
        "done": {"prompt": "Booked for {guests}, {booking_name}.", "end_conversation": True},
    },
    "context_keys": ["vip"],
}


def booking(menu: dict[str, Any] | None = None) -> Catalog:
    return Catalog.build([load_template("booking", 1, menu or BOOKING)])


def waiting(step: str, context: dict[str, Any]) -> State:
    return State("booking", 1, step, context, (), NOW + CONFIG.expiry, NOW)


def texts(messages: tuple[dict[str, Any], ...]) -> list[str]:
    return [
        m["text"]["body"] if m["type"] == "text" else m["interactive"]["body"]["text"]
        for m in messages
    ]


# -- the condition language ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        ("guests > 8", {"guests": 9}, True),
        ("guests > 8", {"guests": "8"}, False),
        ("guests >= 8 and guests <= 10", {"guests": 8}, True),
        ("guests > 8", {}, False),  # a missing key reads as null
        ("guests == null", {}, True),
        ("not exists(note)", {"note": ""}, True),
        ("size == 'large'", {"size": "large"}, True),
        ("size != 'large'", {"size": "small"}, True),
        ("size in sizes", {"size": "m", "sizes": ["s", "m"]}, True),
        ("'veg' in lower(note)", {"note": "VEGan please"}, True),
        ("'veg' not in note", {"note": "meat"}, True),
        ("starts_with(code, 'vip')", {"code": "VIP-7"}, True),
        ("len(trim(name)) >= 2", {"name": "  a "}, False),
        ("total * 2 > 10 or free", {"total": "3.50", "free": True}, True),
        ("round(total, 0) == 4", {"total": "3.50"}, True),
        ("number(age) >= 18", {"age": "nineteen"}, False),
        ("is_number(age) and age > 17", {"age": "19"}, True),
        ("max(a, b) == 5 and min(a, b) == 2 and abs(-2) == 2", {"a": 2, "b": "5"}, True),
        ("total / count > 1", {"total": 3, "count": 0}, False),  # cannot be decided: false
        ("(a or b) and not c", {"a": 0, "b": "x", "c": False}, True),
    ],
)
def test_conditions(expression: str, values: dict[str, Any], expected: bool) -> None:
    assert holds(expression, values) is expected


def test_compute_still_computes_numbers_only() -> None:
    assert evaluate("round(price * 1.075, 2)", {"price": "10"}) == evaluate("10.75", {})
    with pytest.raises(ExpressionError, match="does not compute a number"):
        evaluate("price > 1", {"price": 2})


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("guests >", "ends where a number or name is expected"),
        ("open('x')", "calls 'open', which is not a function"),
        ("lower(a, b)", "calls lower() with 2 arguments; it takes 1"),
        ("a = 1", "has '=' at character 3"),
        ("a and", "ends where"),
        ("x in", "ends where"),
        ("'unclosed", "has '''"),
    ],
)
def test_malformed_conditions_say_why(expression: str, problem: str) -> None:
    with pytest.raises(ExpressionError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        names(expression)


def test_names_skip_functions_and_literals() -> None:
    assert names("lower(size) == 'large' and guests > 8 or vip == true") == {
        "size",
        "guests",
        "vip",
    }


# -- the engine ------------------------------------------------------------------------------


def test_a_step_of_rules_moves_on_at_once_by_the_first_rule_that_holds() -> None:
    decision = decide(waiting("initial", {}), Inbound(text="12"), catalog=booking())

    assert decision.outcome == Outcome.COMPLETED
    assert texts(decision.messages) == [
        "For more than 8 guests our events team will call you. Thank you!"
    ]
    assert decision.result is None


def test_no_rule_holds_so_the_step_goes_to_its_next_step_and_is_not_waited_in() -> None:
    decision = decide(waiting("initial", {}), Inbound(text="4"), catalog=booking())

    assert decision.outcome == Outcome.ADVANCED
    assert decision.state is not None and decision.state.step == "name"
    assert decision.state.context == {"guests": 4}
    assert decision.state.history == (("booking", 1, "initial"),)  # "back" skips check_party
    assert texts(decision.messages) == ["Under what name?"]


def test_rules_route_a_steps_reply_after_it_is_stored() -> None:
    seat = decide(waiting("initial", {}), Inbound(text="1"), catalog=booking())
    assert seat.state is not None and seat.state.step == "seat"

    at_bar = decide(seat.state, Inbound(selection_id="bar"), catalog=booking())
    assert texts(at_bar.messages) == ["The bar seats fill fast: come early!"]
    assert at_bar.result is not None and at_bar.result.context["seat"] == "bar"

    vip = decide(
        waiting("seat", {"guests": 1, "vip": True}), Inbound(selection_id="bar"), catalog=booking()
    )
    assert vip.state is not None and vip.state.step == "name"  # the rule did not hold
    window = decide(seat.state, Inbound(selection_id="window"), catalog=booking())
    assert window.state is not None and window.state.step == "name"


def test_a_rule_on_a_missing_key_does_not_hold() -> None:
    menu = copy.deepcopy(BOOKING)
    menu["steps"]["check_party"]["rules"].insert(0, {"when": "vip", "go": "large_party"})

    decision = decide(waiting("initial", {}), Inbound(text="2"), catalog=booking(menu))

    assert decision.state is not None and decision.state.step == "name"


def test_a_circle_of_rule_steps_stops_after_a_bounded_number_of_hops() -> None:
    # Validation rejects such a circle; a template stored before it could not, so the engine
    # still stops: the customer is told, and is not passed round without end.
    menu = copy.deepcopy(BOOKING)
    menu["steps"]["check_party"]["next_step"] = "recheck"
    menu["steps"]["recheck"] = {
        "rules": [{"when": "false", "go": "done"}],
        "next_step": "check_party",
    }

    decision = decide(waiting("initial", {}), Inbound(text="2"), catalog=booking(menu))

    assert decision.outcome == Outcome.CANCELLED
    assert decision.state is None
    assert texts(decision.messages) == [CONFIG.not_available_text]


# -- validation ------------------------------------------------------------------------------


def problems(menu: dict[str, Any]) -> list[tuple[str, str]]:
    found = validate_template("booking", [], menu, known_templates=())
    return [(v.field, v.description) for v in found]


def with_rules(*rules: Any, **step: Any) -> dict[str, Any]:
    menu = copy.deepcopy(BOOKING)
    kept = BOOKING["steps"]["check_party"]["rules"]  # so that every step stays reachable
    menu["steps"]["check_party"] = {"rules": [*rules, *kept], "next_step": "name", **step}
    return menu


def test_the_booking_template_is_valid() -> None:
    assert problems(BOOKING) == []


def test_a_rule_reading_a_key_no_earlier_step_sets_names_the_path() -> None:
    assert problems(with_rules({"when": "guests > 8 and booking_name == 'x'", "go": "done"})) == [
        (
            "menu_structure.steps.check_party.rules[0].when",
            "expression reads 'booking_name', which only steps after this one set: no step "
            "before it can have stored it",
        )
    ]
    [(field, description)] = problems(with_rules({"when": "gusets > 8", "go": "done"}))
    assert field == "menu_structure.steps.check_party.rules[0].when"
    assert "reads 'gusets', which no step before this one can set" in description
    assert "did you mean 'guests'?" in description


def test_a_rule_must_parse_and_go_somewhere() -> None:
    found = problems(
        with_rules(
            {"when": "guests >", "go": "large_party"},
            {"when": "guests > 1", "go": "nowhere"},
            {"go": "done", "else": 1},
        )
    )
    assert [field for field, _ in found] == [
        "menu_structure.steps.check_party.rules[0].when",
        "menu_structure.steps.check_party.rules[1].go",
        "menu_structure.steps.check_party.rules[2].else",
        "menu_structure.steps.check_party.rules[2].when",
    ]
    assert "ends where a number or name is expected" in found[0][1]
    assert found[2][1].startswith("unknown key 'else'")
    menu = with_rules()
    menu["steps"]["check_party"]["rules"] = []
    assert problems(menu)[0] == (
        "menu_structure.steps.check_party.rules",
        'must be a non-empty list like [{"when": "guests > 8", "go": "large_party"}], not a list',
    )


def test_a_rule_step_without_a_message_needs_a_default_and_takes_no_reply() -> None:
    menu = with_rules({"when": "guests > 8", "go": "large_party"}, context_key="x")
    del menu["steps"]["check_party"]["next_step"]

    assert [field for field, _ in problems(menu)] == [
        "menu_structure.steps.check_party.next_step",
        "menu_structure.steps.check_party.context_key",
    ]


def test_a_circle_of_rule_steps_without_a_message_is_rejected() -> None:
    menu = copy.deepcopy(BOOKING)
    menu["steps"]["check_party"]["next_step"] = "recheck"
    menu["steps"]["recheck"] = {
        "rules": [{"when": "guests > 20", "go": "large_party"}],
        "next_step": "check_party",
    }

    assert problems(menu) == [
        (
            "menu_structure.steps.check_party.rules",
            "steps of rules without a message lead in a circle ('check_party' -> 'recheck' -> "
            "'check_party'): a customer would be passed round it without end; give one of them "
            "a message, or break the circle",
        )
    ]


# -- through a real flowsvc ------------------------------------------------------------------


def test_a_party_of_twelve_takes_the_large_party_path_through_flowsvc(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=flow_pb2.TemplateDefinition(
                name="booking", trigger_keywords=["book"], menu_structure=struct(BOOKING)
            )
        )
    )
    chat = Chat(stub)

    chat.say("book")
    assert chat.texts == ["How many guests?"]
    chat.say("12")
    assert chat.texts == ["For more than 8 guests our events team will call you. Thank you!"]

    chat.say("book")
    chat.say("3")
    assert chat.texts == ["Under what name?"]
    chat.say("Ada")
    assert chat.texts == ["Booked for 3, Ada."]


def test_rules_on_a_step_that_ends_the_conversation_are_never_used() -> None:
    menu = copy.deepcopy(BOOKING)
    menu["steps"]["done"]["rules"] = [{"when": "guests > 1", "go": "name"}]

    assert problems(menu) == [
        (
            "menu_structure.steps.done.rules",
            "is never used: this step ends the conversation (end_conversation is true); remove "
            "one or the other",
        )
    ]
