"""engine.enter(), pure: a running conversation steered from outside merges context, arrives in
a step as an answer would (lookup, messages, an end step's result, history for "back"), and keeps
the customer's last interaction."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from flowsvc.engine import Catalog, Decision, Inbound, Outcome, State, enter, load_template
from tests.engine_calls import CONFIG, NOW, REF, TO, decide, shipped

PAY_ORDER = json.loads((Path(__file__).parent / "data" / "pay_order.json").read_text())
CATALOG = Catalog.build([*shipped(), load_template("pay_order", 1, PAY_ORDER["menu_structure"])])
WAITING = State(
    flow="pay_order",
    version=1,
    step="awaiting_payment",
    context={"item": "Tea", "total": "3"},
    history=(("pay_order", 1, "initial"),),
    expires_at=NOW + timedelta(hours=1),
    last_interaction=NOW - timedelta(hours=5),
)


def steer(state: State = WAITING, **arguments: object) -> Decision:
    decision = enter(
        CATALOG,
        state,
        to=TO,
        now=NOW,
        config=CONFIG,
        reference=REF,
        **arguments,  # type: ignore[arg-type]
    )
    assert isinstance(decision, Decision)
    return decision


def test_an_end_step_completes_the_flow_with_the_merged_context() -> None:
    decision = steer(step="paid", context={"paid": True})

    assert decision.outcome == Outcome.COMPLETED and decision.state is None
    assert decision.result is not None
    assert dict(decision.result.context) == {"item": "Tea", "total": "3", "paid": True}
    assert decision.messages[0]["text"]["body"] == (
        "✅ Payment received: Tea is confirmed. Your order number is K7M4Q2."
    )


def test_context_alone_stays_and_keeps_the_customers_last_interaction() -> None:
    decision = steer(context={"note": "x"})

    assert decision.state is not None
    assert decision.state.step == "awaiting_payment"
    assert decision.state.history == WAITING.history
    assert decision.state.last_interaction == WAITING.last_interaction
    assert decision.state.expires_at > WAITING.expires_at  # a steered conversation lives on
    assert decision.state.context["note"] == "x"


def test_a_move_can_be_undone_by_back() -> None:
    moved = steer(step="initial")
    assert moved.state is not None
    back = decide(moved.state, Inbound(text="back"), catalog=CATALOG)
    assert back.state is not None and back.state.step == "awaiting_payment"


def test_a_flow_switch_starts_its_initial_step() -> None:
    decision = steer(flow="support")
    assert decision.state is not None
    assert (decision.state.flow, decision.state.step) == ("support", "initial")
    assert decision.state.history[-1] == ("pay_order", 1, "awaiting_payment")


@pytest.mark.parametrize(
    "arguments", [{"step": "shipped"}, {"flow": "nope"}, {"flow": "support", "step": "nope"}]
)
def test_a_step_that_is_not_there_is_a_value_error(arguments: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        steer(**arguments)
