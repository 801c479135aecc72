"""Step timers in the pure engine: arriving arms the timer, a reply re-arms it, silence() sends
the reminders and then goes to the target or ends the conversation (engine.timers)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flowsvc.engine import (
    Catalog,
    Decision,
    Inbound,
    Outcome,
    State,
    load_template,
    silence,
    start,
)
from flowsvc.engine.timers import parse_duration
from tests.engine_calls import CATALOG, CONFIG, NOW, REF, TO, decide

MINUTE = timedelta(minutes=1)


def quiet(state: State, now: datetime, catalog: Catalog = CATALOG) -> Decision:
    decided = silence(catalog, state, to=TO, now=now, config=CONFIG, reference=REF)
    assert isinstance(decided, Decision)
    return decided


def texts(decision: Decision) -> list[str]:
    return [m["text"]["body"] for m in decision.messages if m["type"] == "text"]


def at_quantity() -> State:
    """A customer who chose a coffee in the order flow, at NOW."""
    started = decide(None, Inbound(text="order"))
    assert started.state is not None and started.state.flow == "new_order"
    tapped = decide(started.state, Inbound(selection_id="coffee", selection_title="Coffee"))
    assert tapped.state is not None and tapped.state.step == "quantity"
    return tapped.state


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("10m") == 10 * MINUTE
    assert parse_duration("2h") == timedelta(hours=2)
    assert parse_duration("1d") == timedelta(days=1)
    for bad in ("", "10", "0m", "1w", "31d", "1.5h", 10, None):
        assert parse_duration(bad) is None


def test_arriving_in_a_step_with_a_timeout_arms_it_and_a_step_without_does_not() -> None:
    started = decide(None, Inbound(text="order"))
    assert started.state is not None and started.state.silence_due_at is None  # the product list
    state = at_quantity()
    assert state.silence_due_at == NOW + 10 * MINUTE
    assert state.reminders == 0


def test_silence_reminds_once_then_ends_the_order_with_its_message() -> None:
    state = at_quantity()
    too_early = quiet(state, NOW + 9 * MINUTE)
    assert too_early.outcome == Outcome.IGNORED and too_early.messages == ()

    reminded = quiet(state, NOW + 10 * MINUTE)
    assert reminded.outcome == Outcome.REMINDED
    assert texts(reminded) == [
        'Still there? Your Coffee order is waiting: reply to carry on, or "cancel" to stop.'
    ]
    after = reminded.state
    assert after is not None and after.step == "quantity" and after.reminders == 1
    assert after.silence_due_at == NOW + 30 * MINUTE  # 30 minutes of silence in all
    assert after.last_interaction == state.last_interaction  # the customer did not write

    ended = quiet(after, NOW + 30 * MINUTE)
    assert ended.outcome == Outcome.TIMED_OUT and ended.state is None and ended.result is None
    assert texts(ended) == [
        "We cancelled your order as we did not hear from you; nothing was placed. "
        'Send "menu" whenever you want to start again.'
    ]


def test_a_late_reminder_still_leaves_the_customer_the_time_to_answer_it() -> None:
    reminded = quiet(at_quantity(), NOW + 25 * MINUTE)  # fired late (flowsvc was down)
    assert reminded.state is not None
    assert reminded.state.silence_due_at == NOW + 45 * MINUTE


def test_the_customers_reply_cancels_the_timer_and_arms_the_next_steps() -> None:
    reminded = quiet(at_quantity(), NOW + 10 * MINUTE).state
    assert reminded is not None
    later = NOW + 12 * MINUTE
    wrong = decide(reminded, Inbound(text="lots"), now=later)  # invalid: stays, starts afresh
    assert wrong.outcome == Outcome.INVALID_INPUT and wrong.state is not None
    assert (wrong.state.silence_due_at, wrong.state.reminders) == (later + 10 * MINUTE, 0)
    moved = decide(reminded, Inbound(text="2"), now=later)
    assert moved.state is not None and moved.state.step == "fulfilment"
    assert (moved.state.silence_due_at, moved.state.reminders) == (later + 10 * MINUTE, 0)
    # The timer the customer's reply replaced does nothing if it is fired anyway.
    assert quiet(moved.state, later + MINUTE).outcome == Outcome.IGNORED


def waiting_menu(timeout: dict[str, Any]) -> tuple[Catalog, State]:
    menu = {
        "type": "text",
        "body": {"text": "Your name?"},
        "steps": {
            "initial": {"context_key": "name", "next_step": "done", "timeout": timeout},
            "done": {"prompt": "Thanks {name}.", "end_conversation": True},
            "nudged": {"prompt": "We will call you back.", "end_conversation": True},
            "ask_again": {"prompt": "Your name, please?", "next_step": "done"},
        },
    }
    catalog = Catalog.build([load_template("signup", 1, menu)])
    decided = start(catalog, "signup", to=TO, now=NOW, config=CONFIG, reference=REF)
    assert isinstance(decided, Decision) and decided.state is not None
    return catalog, decided.state


def test_go_moves_to_a_step_and_sends_its_messages() -> None:
    catalog, state = waiting_menu({"after": "5m", "go": "ask_again"})
    assert state.silence_due_at == NOW + 5 * MINUTE
    moved = quiet(state, NOW + 5 * MINUTE, catalog)
    assert moved.outcome == Outcome.TIMED_OUT
    assert moved.state is not None and moved.state.step == "ask_again"
    assert moved.state.silence_due_at is None  # ask_again has no timeout
    assert texts(moved) == ["Your name, please?"]


def test_go_to_an_end_step_completes_the_flow() -> None:
    catalog, state = waiting_menu({"after": "5m", "go": "nudged"})
    ended = quiet(state, NOW + 6 * MINUTE, catalog)
    assert ended.state is None and texts(ended) == ["We will call you back."]
    assert ended.result is not None  # an end step stores its result, as any arrival would


def test_reminders_only_stop_after_the_last() -> None:
    catalog, state = waiting_menu({"remind": {"after": "1h", "times": 2, "text": "Name?"}})
    first = quiet(state, NOW + 60 * MINUTE, catalog).state
    assert first is not None and first.silence_due_at == NOW + 120 * MINUTE
    second = quiet(first, NOW + 120 * MINUTE, catalog)
    assert texts(second) == ["Name?"]
    assert second.state is not None and second.state.silence_due_at is None
    assert second.state.reminders == 2


def test_a_timer_of_an_expired_conversation_does_nothing() -> None:
    state = at_quantity()
    gone = quiet(state, state.expires_at + MINUTE)
    assert gone.outcome == Outcome.IGNORED and gone.messages == ()


def test_the_reminder_speaks_the_customers_language() -> None:
    timeout = {"after": "5m", "remind": {"after": "1m", "text": "Name?"}, "end": "Bye."}
    menu = {
        "type": "text",
        "body": {"text": "Your name?"},
        "translations": {
            "es": {
                "steps.initial.timeout.remind.text": "¿Nombre?",
                "steps.initial.timeout.end": "Adiós.",
            }
        },
        "steps": {
            "initial": {"context_key": "name", "next_step": "done", "timeout": timeout},
            "done": {"prompt": "Thanks {name}.", "end_conversation": True},
        },
    }
    catalog = Catalog.build([load_template("signup", 1, menu)])
    started = start(
        catalog, "signup", context={"language": "es"}, to=TO, now=NOW, config=CONFIG, reference=REF
    )
    assert isinstance(started, Decision) and started.state is not None
    reminded = quiet(started.state, NOW + MINUTE, catalog)
    assert texts(reminded) == ["¿Nombre?"]
    assert reminded.state is not None
    assert texts(quiet(reminded.state, NOW + 5 * MINUTE, catalog)) == ["Adiós."]
