"""Call steps in the pure engine: entering one decides the call (filled from the context), the
result routes on success, an error status, a timeout and a response lacking a mapped field, and
a customer writing meanwhile is told to wait; plus validation of a step's `call`."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flowsvc.engine import (
    CallResult,
    Catalog,
    Decision,
    Inbound,
    Outcome,
    State,
    continue_call,
    load_template,
)
from flowsvc.engine.calls import ERROR, OK, TIMEOUT
from flowsvc.validation import validate_template
from tests.engine_calls import CATALOG, CONFIG, NOW, REF, TEMPLATES, TO, decide

KNOWN = {"main_menu", "new_order", "support", "account"}


def at_address() -> State:
    """A customer of the order flow who chose two coffees for delivery and is asked the address."""
    state = None
    for said in (Inbound(text="order"), Inbound(selection_id="coffee")):
        state = decide(state, said).state
    state = decide(state, Inbound(text="2")).state
    state = decide(state, Inbound(selection_id="delivery")).state
    assert state is not None and state.step == "address"
    return state


def texts(decision: Decision) -> list[str]:
    return [
        body.get("text", {}).get("body") or body.get("interactive", {}).get("body", {}).get("text")
        for body in decision.messages
    ]


def finish(state: State, result: CallResult, catalog: Catalog = CATALOG) -> Decision:
    decided = continue_call(
        catalog,
        state,
        result,
        step="check_address",
        to=TO,
        now=NOW + timedelta(seconds=3),
        config=CONFIG,
        reference=REF,
    )
    assert isinstance(decided, Decision)
    return decided


def test_entering_a_call_step_queues_the_call_filled_from_the_context_and_says_one_moment() -> None:
    decision = decide(at_address(), Inbound(text="12 Harbour Road, Leith"))
    assert decision.state is not None and decision.state.step == "check_address"
    assert decision.call is not None
    assert (decision.call.endpoint, decision.call.method, decision.call.path) == (
        "address_check",
        "POST",
        "/check",
    )
    assert json.loads(decision.call.body_json) == {"address": "12 Harbour Road, Leith"}
    assert decision.call.timeout_seconds == 5
    assert texts(decision) == [
        "One moment, I'm checking that we deliver to 12 Harbour Road, Leith…"
    ]


def test_a_successful_call_maps_the_response_into_the_context_and_goes_to_next_step() -> None:
    waiting = decide(at_address(), Inbound(text="12 Harbour Road")).state
    assert waiting is not None
    decision = finish(waiting, CallResult(OK, 200, {"zone": "B", "eta": 30}))
    assert decision.outcome == Outcome.ADVANCED
    assert decision.state is not None and decision.state.step == "delivery_confirmation"
    assert decision.state.context["delivery_zone"] == "B"
    assert "Delivery to 12 Harbour Road (zone B)." in texts(decision)[0]
    assert decision.state.last_interaction == waiting.last_interaction  # the customer was silent


def test_an_error_status_a_refused_connection_and_a_timeout_take_the_failure_path() -> None:
    waiting = decide(at_address(), Inbound(text="12 Harbour Road")).state
    assert waiting is not None
    for result in (
        CallResult(OK, 503, {"zone": "B"}),
        CallResult(OK, 404, None),
        CallResult(ERROR, 0, None, "connection refused"),
        CallResult(TIMEOUT),
    ):
        decision = finish(waiting, result)
        assert decision.state is not None and decision.state.step == "address_failed", result
        assert "could not confirm delivery" in texts(decision)[0]
        assert "delivery_zone" not in decision.state.context


def test_a_response_lacking_a_mapped_field_takes_the_error_path() -> None:
    waiting = decide(at_address(), Inbound(text="12 Harbour Road")).state
    assert waiting is not None
    decision = finish(waiting, CallResult(OK, 200, {"area": "B"}))
    assert decision.state is not None and decision.state.step == "address_failed"
    decision = finish(waiting, CallResult(OK, 200, "not json at all"))
    assert decision.state is not None and decision.state.step == "address_failed"


def test_a_customer_writing_while_the_call_runs_hears_it_is_on_its_way() -> None:
    waiting = decide(at_address(), Inbound(text="12 Harbour Road")).state
    decision = decide(waiting, Inbound(text="hello?"))
    assert decision.outcome == Outcome.WAITING
    assert decision.state is not None and decision.state.step == "check_address"
    assert decision.call is None  # asked once: no second call
    assert texts(decision) == ["One moment, I'm checking that we deliver to 12 Harbour Road…"]
    assert decide(waiting, Inbound(text="cancel")).outcome == Outcome.CANCELLED


def test_a_result_for_a_conversation_that_moved_on_is_ignored() -> None:
    waiting = decide(at_address(), Inbound(text="12 Harbour Road")).state
    assert waiting is not None
    moved = decide(waiting, Inbound(text="back")).state
    assert moved is not None and moved.step != "check_address"
    decision = finish(moved, CallResult(OK, 200, {"zone": "B"}))
    assert decision.outcome == Outcome.IGNORED and decision.state == moved
    assert finish_none().outcome == Outcome.IGNORED


def finish_none() -> Decision:
    decided = continue_call(
        CATALOG, None, CallResult(OK, 200, {}), step="check_address", to=TO, now=NOW,
        config=CONFIG, reference=REF,
    )  # fmt: skip
    assert isinstance(decided, Decision)
    return decided


def test_nested_fields_list_positions_and_typed_body_placeholders() -> None:
    menu: dict[str, Any] = {
        "type": "text",
        "body": {"text": "How many guests?"},
        "context_keys": ["note"],
        "steps": {
            "initial": {
                "validation": {"type": "integer", "min": 1, "max": 20},
                "context_key": "guests",
                "next_step": "slots",
            },
            "slots": {
                "call": {
                    "endpoint": "bookings",
                    "method": "GET",
                    "path": "/slots/{guests}?note={note}",
                    "body": {"guests": "{guests}", "label": "for {guests}"},
                    "map": {"first_slot": "slots.0.time", "city": "venue.city"},
                    "on_error": "sorry",
                },
                "next_step": "done",
            },
            "done": {"prompt": "First slot {first_slot} in {city}.", "end_conversation": True},
            "sorry": {"prompt": "No slots right now.", "end_conversation": True},
        },
    }
    assert validate_template("book", [], menu, known_templates=set()) == []
    catalog = Catalog.build([load_template("book", 1, menu)])
    started = decide(None, Inbound(text="hi"), catalog=catalog)
    state = State("book", 1, "initial", {"note": "a/b c"}, (), NOW + timedelta(days=1), NOW)
    entered = decide(state, Inbound(text="4"), catalog=catalog)
    assert started is not None and entered.call is not None
    assert entered.call.path == "/slots/4?note=a%2Fb%20c"
    assert json.loads(entered.call.body_json) == {"guests": 4, "label": "for 4"}
    assert entered.state is not None
    done = continue_call(
        catalog,
        entered.state,
        CallResult(OK, 200, {"slots": [{"time": "19:00"}], "venue": {"city": "Porto"}}),
        step="slots",
        to=TO,
        now=NOW,
        config=CONFIG,
        reference=REF,
    )
    assert isinstance(done, Decision) and done.outcome == Outcome.COMPLETED
    assert texts(done) == ["First slot 19:00 in Porto."]


def test_validation_names_the_path_of_each_problem_with_a_call() -> None:
    menu = json.loads(
        json.dumps(
            {
                "type": "text",
                "body": {"text": "Address?"},
                "steps": {
                    "initial": {"context_key": "address", "next_step": "check"},
                    "check": {
                        "call": {
                            "endpoint": "https://api.example/check",
                            "method": "FETCH",
                            "path": "check/{adress}",
                            "timeout_seconds": 90,
                            "map": {"zone": ""},
                            "on_timeout": "nowhere",
                            "headers": {"Authorization": "Bearer x"},
                        },
                        "context_key": "x",
                    },
                },
            }
        )
    )
    found = {v.field for v in validate_template("t", [], menu, known_templates=set())}
    call = "menu_structure.steps.check.call"
    assert {
        f"{call}.endpoint",
        f"{call}.method",
        f"{call}.path",
        f"{call}.timeout_seconds",
        f"{call}.map.zone",
        f"{call}.on_timeout",
        f"{call}.on_error",
        f"{call}.headers",
        "menu_structure.steps.check.next_step",
        "menu_structure.steps.check.context_key",
    } <= found


def test_the_shipped_order_flow_is_valid() -> None:
    raw = json.loads((TEMPLATES / "new_order.json").read_text(encoding="utf-8"))
    assert (
        validate_template(
            raw["name"], raw["trigger_keywords"], raw["menu_structure"], known_templates=KNOWN
        )
        == []
    )
