"""The shipped templates end to end through advance(): what a customer sees and what is stored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowsvc.engine import (
    Catalog,
    Decision,
    Facts,
    Inbound,
    Needs,
    OrderFact,
    Outcome,
    State,
    advance,
)
from tests.engine_calls import CATALOG, CONFIG, NOW, REF, TO, decide as step, shipped


def text(value: str) -> Inbound:
    return Inbound(text=value)


def tap(option_id: str, title: str = "") -> Inbound:
    return Inbound(selection_id=option_id, selection_title=title)


def bodies(decision: Decision) -> list[str]:
    """What the customer reads, message by message."""
    out = []
    for message in decision.messages:
        if message["type"] == "text":
            out.append(message["text"]["body"])
        else:
            out.append(message["interactive"]["body"]["text"])
    return out


def option_ids(message: dict[str, Any]) -> list[str]:
    action = message["interactive"]["action"]
    if "buttons" in action:
        return [button["reply"]["id"] for button in action["buttons"]]
    return [row["id"] for section in action["sections"] for row in section["rows"]]


def run(*inbounds: Inbound, state: State | None = None, facts: Facts | None = None) -> Decision:
    decision = None
    for inbound in inbounds:
        decision = step(state, inbound, facts=facts)
        state = decision.state
    assert decision is not None
    return decision


def at(decision: Decision) -> tuple[str, str]:
    assert decision.state is not None
    return decision.state.flow, decision.state.step


def test_hi_starts_the_main_menu_with_three_buttons() -> None:
    decision = step(None, text("Hi!"))
    assert decision.outcome is Outcome.STARTED
    assert at(decision) == ("main_menu", "initial")
    assert decision.state is not None
    assert decision.state.context == {}
    assert decision.state.history == ()
    assert decision.state.expires_at == NOW + timedelta(hours=24)
    assert decision.state.last_interaction == NOW
    (menu,) = decision.messages
    assert menu["to"] == TO
    assert option_ids(menu) == ["new_order", "support", "account"]


def test_the_order_flow_shows_product_quantity_and_total() -> None:
    menu = run(text("hi"))
    order = step(menu.state, tap("new_order", "New Order"))
    assert order.outcome is Outcome.ADVANCED
    assert at(order) == ("new_order", "initial")
    assert option_ids(order.messages[0]) == ["coffee", "tea", "juice", "sandwich", "salad", "pasta"]

    quantity = step(order.state, tap("coffee", "Coffee"))
    assert at(quantity) == ("new_order", "quantity")
    assert bodies(quantity) == ["How many Coffee would you like? Send a number from 1 to 99."]

    fulfilment = step(quantity.state, text("2"))
    assert at(fulfilment) == ("new_order", "fulfilment")
    assert bodies(fulfilment) == ["Pickup or delivery?"]
    confirmation = step(fulfilment.state, tap("pickup", "🏪 Pickup"))
    assert at(confirmation) == ("new_order", "confirmation")
    (message,) = confirmation.messages
    assert "2 x Coffee = $7.00" in message["interactive"]["body"]["text"]
    assert option_ids(message) == ["yes", "no"]
    assert confirmation.state is not None
    assert confirmation.state.context == {
        "previous_selection": "new_order",
        "product": "coffee",
        "product_title": "Coffee",
        "price": "3.50",
        "quantity": 2,
        "total": "7.00",
        "fulfilment": "pickup",
        "fulfilment_title": "🏪 Pickup",
    }

    done = step(confirmation.state, tap("yes", "✅ Yes"))
    assert done.outcome is Outcome.COMPLETED
    assert done.state is None
    assert bodies(done)[0].startswith(f"Order placed! Your order number is {REF}")
    assert done.result is not None
    assert (done.result.template, done.result.version, done.result.reference) == (
        "new_order",
        1,
        REF,
    )
    assert done.result.context["total"] == "7.00"
    assert done.result.context["quantity"] == 2


def test_answering_no_cancels_the_order_without_a_result() -> None:
    confirmation = run(text("order"), tap("tea"), text("3"), tap("pickup"))
    assert "3 x Tea = $7.50" in bodies(confirmation)[0]
    cancelled = step(confirmation.state, tap("no"))
    assert cancelled.outcome is Outcome.COMPLETED
    assert cancelled.state is None
    assert cancelled.result is None
    assert "cancelled" in bodies(cancelled)[0]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [("Coffee", "coffee"), ("fresh juice", "juice"), ("PASTA", "pasta"), ("sandwich", "sandwich")],
    ids=["title", "two-word-title", "upper-case", "id"],
)
def test_typing_a_product_name_is_the_same_as_tapping_it(typed: str, expected: str) -> None:
    decision = run(text("order"), text(typed))
    assert at(decision) == ("new_order", "quantity")
    assert decision.state is not None
    assert decision.state.context["product"] == expected


@pytest.mark.parametrize(
    "typed",
    ["0", "100", "two", "2.5", "-1", ""],
    ids=["zero", "over-max", "word", "fraction", "negative", "empty"],
)
def test_a_bad_quantity_is_re_asked_and_changes_nothing(typed: str) -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state, text(typed), now=NOW + timedelta(minutes=5))
    assert decision.outcome is Outcome.INVALID_INPUT
    assert bodies(decision) == ["Please send a whole number from 1 to 99."]
    assert decision.state is not None and quantity.state is not None
    assert decision.state == replace(
        quantity.state,
        last_interaction=NOW + timedelta(minutes=5),
        expires_at=NOW + timedelta(minutes=5, hours=24),
        # The reply restarts the step's silence: its reminder is 10 minutes from now.
        silence_due_at=NOW + timedelta(minutes=15),
    )


def test_typing_yes_confirms_and_typing_nonsense_re_asks_with_the_buttons() -> None:
    confirmation = run(text("order"), tap("salad"), text("1"), tap("pickup"))
    nonsense = step(confirmation.state, text("maybe later"))
    assert nonsense.outcome is Outcome.INVALID_INPUT
    assert bodies(nonsense)[0] == "Please tap Yes to place the order or No to cancel it."
    assert option_ids(nonsense.messages[1]) == ["yes", "no"]
    assert step(confirmation.state, text("yes")).outcome is Outcome.COMPLETED


@pytest.mark.parametrize(
    ("first", "template"),
    [
        ("Hi!", "main_menu"),
        ("hi there", "main_menu"),
        ("HELLO", "main_menu"),
        ("help", "support"),
        ("I need help, please", "support"),
        ("track order", "support"),
        ("my orders", "account"),
        ("I want to order", "new_order"),
        ("new order please", "new_order"),
        ("this is fine", "main_menu"),
        ("something else entirely", "main_menu"),
    ],
    ids=[
        "hi-punctuated",
        "hi-phrase",
        "upper-case",
        "help-is-support",
        "help-in-sentence",
        "longer-phrase-wins",
        "my-orders-is-account",
        "order",
        "new-order",
        "this-is-not-hi-default",
        "no-match-default",
    ],
)
def test_first_messages_start_the_matching_template(first: str, template: str) -> None:
    decision = step(None, text(first))
    assert decision.outcome is Outcome.STARTED
    assert at(decision) == (template, "initial")


def test_a_tap_without_a_conversation_gets_the_main_menu() -> None:
    decision = step(None, tap("coffee", "Coffee"))
    assert decision.outcome is Outcome.STARTED
    assert at(decision) == ("main_menu", "initial")


def test_no_match_without_a_default_gets_the_help_text() -> None:
    catalog = Catalog.build(shipped(main_menu=False))
    decision = step(None, text("something else"), catalog=catalog)
    assert decision.outcome is Outcome.HELP
    assert decision.state is None
    assert bodies(decision) == [CONFIG.help_text]


def test_inactive_templates_are_not_started_by_keywords() -> None:
    catalog = Catalog.build(shipped(support=False))
    assert at(step(None, text("help"), catalog=catalog)) == ("main_menu", "initial")


def test_a_switch_to_an_inactive_template_says_it_is_not_available() -> None:
    catalog = Catalog.build(shipped(new_order=False))
    menu = step(None, text("hi"), catalog=catalog)
    decision = step(menu.state, tap("new_order"), catalog=catalog)
    assert decision.outcome is Outcome.STALE_SELECTION
    assert bodies(decision)[0] == "That option is not available right now."
    assert option_ids(decision.messages[1]) == ["new_order", "support", "account"]
    assert at(decision) == ("main_menu", "initial")


@pytest.mark.parametrize("word", ["cancel", "EXIT", "quit!", "Cancel."], ids=str)
def test_cancel_words_end_the_conversation_anywhere(word: str) -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state, text(word))
    assert decision.outcome is Outcome.CANCELLED
    assert decision.state is None
    assert decision.result is None
    assert bodies(decision) == [CONFIG.cancelled_text]


def test_cancel_without_a_conversation_says_there_is_nothing_to_cancel() -> None:
    decision = step(None, text("cancel"))
    assert decision.outcome is Outcome.CANCELLED
    assert decision.state is None
    assert bodies(decision) == [CONFIG.nothing_to_cancel_text]


@pytest.mark.parametrize("state_given", [True, False], ids=["in-conversation", "no-conversation"])
def test_menu_restarts_the_main_menu_with_a_fresh_context(state_given: bool) -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state if state_given else None, text("Menu"))
    assert decision.outcome is Outcome.RESTARTED
    assert at(decision) == ("main_menu", "initial")
    assert decision.state is not None
    assert decision.state.context == {}
    assert decision.state.history == ()


def test_a_greeting_mid_flow_that_is_not_valid_input_starts_its_template() -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state, text("hi"))
    assert decision.outcome is Outcome.STARTED
    assert at(decision) == ("main_menu", "initial")


def test_back_goes_step_by_step_across_a_flow_switch() -> None:
    quantity = run(text("hi"), tap("new_order"), tap("coffee"))
    assert quantity.state is not None
    assert quantity.state.history == (("main_menu", 1, "initial"), ("new_order", 1, "initial"))

    products = step(quantity.state, text("back"))
    assert products.outcome is Outcome.WENT_BACK
    assert at(products) == ("new_order", "initial")
    assert option_ids(products.messages[0])[0] == "coffee"

    menu = step(products.state, text("back"))
    assert at(menu) == ("main_menu", "initial")
    assert menu.state is not None and menu.state.history == ()

    again = step(menu.state, text("back"))
    assert again.outcome is Outcome.WENT_BACK
    assert at(again) == ("main_menu", "initial")
    assert option_ids(again.messages[0]) == ["new_order", "support", "account"]


def test_a_stale_tap_re_sends_the_current_step() -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state, tap("support", "Support"))
    assert decision.outcome is Outcome.STALE_SELECTION
    assert bodies(decision) == ["How many Coffee would you like? Send a number from 1 to 99."]
    assert at(decision) == ("new_order", "quantity")


@pytest.mark.parametrize("kind", ["image", "sticker", "location", "unsupported"], ids=str)
def test_unsupported_messages_explain_and_repeat_the_step(kind: str) -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state, Inbound(unsupported_type=kind))
    assert decision.outcome is Outcome.UNSUPPORTED
    assert bodies(decision) == [
        CONFIG.unsupported_text,
        "How many Coffee would you like? Send a number from 1 to 99.",
    ]
    assert at(decision) == ("new_order", "quantity")


def test_unsupported_messages_without_a_conversation_get_a_hint() -> None:
    decision = step(None, Inbound(unsupported_type="image"))
    assert decision.outcome is Outcome.UNSUPPORTED
    assert decision.state is None
    assert bodies(decision) == [f"{CONFIG.unsupported_text} {CONFIG.start_hint}"]


def test_an_expired_conversation_is_not_continued() -> None:
    quantity = run(text("order"), tap("coffee"))
    assert quantity.state is not None
    later = quantity.state.expires_at
    decision = step(quantity.state, text("2"), now=later)
    assert decision.outcome is Outcome.EXPIRED
    assert bodies(decision)[0] == CONFIG.expired_text
    assert at(decision) == ("main_menu", "initial")
    assert decision.state is not None
    assert decision.state.context == {}
    assert decision.state.expires_at == later + timedelta(hours=24)


def test_a_customer_whose_expired_conversation_was_swept_is_told_too() -> None:
    decision = step(None, tap("coffee", "Coffee"), expired_since=True)
    assert decision.outcome is Outcome.EXPIRED
    assert bodies(decision)[0] == CONFIG.expired_text
    assert at(decision) == ("main_menu", "initial")


@pytest.mark.parametrize("kind", sorted(CONFIG.silent_types), ids=lambda kind: f"{kind}-mid-flow")
def test_a_message_that_needs_no_answer_gets_none_and_changes_nothing(kind: str) -> None:
    quantity = run(text("order"), tap("coffee"))
    decision = step(quantity.state, Inbound(unsupported_type=kind), now=NOW + timedelta(hours=1))
    assert decision.outcome is Outcome.IGNORED
    assert decision.messages == ()
    assert decision.state == quantity.state  # not even its expiry moves


@pytest.mark.parametrize("kind", sorted(CONFIG.silent_types))
def test_a_message_that_needs_no_answer_starts_nothing(kind: str) -> None:
    for expired_since in (False, True):
        decision = step(None, Inbound(unsupported_type=kind), expired_since=expired_since)
        assert (decision.outcome, decision.state, decision.messages) == (Outcome.IGNORED, None, ())


def test_an_expired_conversation_honours_a_keyword() -> None:
    quantity = run(text("order"), tap("coffee"))
    assert quantity.state is not None
    decision = step(quantity.state, text("help"), now=quantity.state.expires_at + timedelta(days=3))
    assert decision.outcome is Outcome.EXPIRED
    assert at(decision) == ("support", "initial")


def order(reference: str, created: datetime, **context: Any) -> OrderFact:
    return OrderFact(reference, "new_order", 1, context, created)


COFFEE = order(
    "K7M4Q2", datetime(2025, 11, 20, tzinfo=UTC), product_title="Coffee", quantity=2, total="7.00"
)
PASTA = order(
    "ABC234", datetime(2025, 11, 25, tzinfo=UTC), product_title="Pasta", quantity=1, total="9.00"
)


@pytest.mark.parametrize("typed", ["K7M4Q2", "k7m4q2", "K7M-4Q2", " #k7 m4q2 "], ids=str)
def test_support_tracks_an_order_by_its_reference(typed: str) -> None:
    asking = run(text("support"), tap("track_order"))
    assert at(asking) == ("support", "track_order")
    needs = advance(
        CATALOG, asking.state, text(typed), to=TO, now=NOW, config=CONFIG, reference=REF
    )
    assert needs == Needs(reference="K7M4Q2", recent_limit=5, templates=("new_order",))
    found = step(asking.state, text(typed), facts=Facts(orders=(COFFEE, PASTA)))
    assert found.outcome is Outcome.ADVANCED
    assert at(found) == ("support", "order_status")
    assert "Order K7M4Q2, placed on 20 Nov 2025:\n2 x Coffee = $7.00" in bodies(found)[0]


def test_an_unknown_reference_is_re_asked() -> None:
    asking = run(text("support"), tap("track_order"))
    decision = step(asking.state, text("ZZZ999"), facts=Facts(orders=(COFFEE,)))
    assert decision.outcome is Outcome.INVALID_INPUT
    assert bodies(decision)[0].startswith("I couldn't find an order with that number.")
    assert at(decision) == ("support", "track_order")


def test_account_lists_recent_orders_newest_first() -> None:
    account = run(text("account"))
    needs = advance(
        CATALOG, account.state, tap("orders"), to=TO, now=NOW, config=CONFIG, reference=REF
    )
    assert needs == Needs(reference=None, recent_limit=5, templates=("new_order",))
    listed = step(account.state, tap("orders"), facts=Facts(orders=(COFFEE, PASTA)))
    assert bodies(listed)[0] == (
        "📦 Your recent orders:\n"
        "1. ABC234 · 1 x Pasta · $9.00 · 25 Nov 2025\n"
        "2. K7M4Q2 · 2 x Coffee · $7.00 · 20 Nov 2025"
    )
    assert option_ids(listed.messages[0]) == ["new_order", "main_menu", "done"]


def test_account_without_orders_says_so() -> None:
    listed = step(run(text("account")).state, tap("orders"), facts=Facts())
    assert bodies(listed)[0] == "📦 Your recent orders:\nYou have no orders yet."


SUPPORT_WALKS = [
    pytest.param([tap("faq"), tap("hours"), tap("done")], Outcome.COMPLETED, id="faq-hours-done"),
    pytest.param([tap("faq"), tap("delivery"), tap("more")], ("support", "faq"), id="faq-more"),
    pytest.param(
        [tap("faq"), tap("payment"), tap("main_menu")], ("main_menu", "initial"), id="faq-menu"
    ),
    pytest.param(
        [tap("faq"), tap("refunds"), tap("contact")], ("support", "contact"), id="refunds-contact"
    ),
    pytest.param([tap("contact"), tap("done")], Outcome.COMPLETED, id="contact-done"),
    pytest.param(
        [text("FAQ"), text("opening hours")], ("support", "faq_hours"), id="typed-options"
    ),
]


@pytest.mark.parametrize(("taps", "end"), SUPPORT_WALKS)
def test_every_support_branch_answers(taps: list[Inbound], end: Outcome | tuple[str, str]) -> None:
    state = step(None, text("help")).state
    decision = None
    for inbound in taps:
        decision = step(state, inbound)
        assert decision.outcome in (Outcome.ADVANCED, Outcome.COMPLETED), bodies(decision)
        assert decision.messages
        state = decision.state
    assert decision is not None
    if isinstance(end, Outcome):
        assert decision.outcome is end
        assert decision.result is None
    else:
        assert at(decision) == end


ACCOUNT_WALKS = [
    pytest.param(
        [tap("profile"), tap("back_to_account")], ("account", "initial"), id="profile-back"
    ),
    pytest.param(
        [tap("settings"), tap("back_to_account")], ("account", "initial"), id="settings-back"
    ),
    pytest.param(
        [tap("settings"), tap("language_es")], ("account", "settings"), id="settings-espanol"
    ),
    pytest.param([tap("orders"), tap("new_order")], ("new_order", "initial"), id="orders-new"),
    pytest.param([tap("profile"), tap("done")], Outcome.COMPLETED, id="profile-done"),
]


@pytest.mark.parametrize(("taps", "end"), ACCOUNT_WALKS)
def test_every_account_branch_answers(taps: list[Inbound], end: Outcome | tuple[str, str]) -> None:
    state = step(None, text("my account")).state
    decision = None
    for inbound in taps:
        decision = step(state, inbound, facts=Facts())
        assert decision.outcome in (Outcome.ADVANCED, Outcome.COMPLETED), bodies(decision)
        state = decision.state
    assert decision is not None
    if isinstance(end, Outcome):
        assert decision.outcome is end
        assert decision.result is None
    else:
        assert at(decision) == end


def test_the_profile_greets_the_customer_by_name() -> None:
    account = run(text("account"))
    decision = step(account.state, Inbound(selection_id="profile", contact_name="Sheena"))
    assert "Name: Sheena" in bodies(decision)[0]


def test_back_without_a_conversation_gets_the_main_menu() -> None:
    decision = step(None, text("back"))
    assert decision.outcome is Outcome.STARTED
    assert at(decision) == ("main_menu", "initial")


def test_a_conversation_continues_when_its_template_is_deactivated() -> None:
    quantity = run(text("order"), tap("coffee"))
    catalog = Catalog.build(shipped(new_order=False))
    decision = step(quantity.state, text("2"), catalog=catalog)
    assert decision.outcome is Outcome.ADVANCED
    assert at(decision) == ("new_order", "fulfilment")
