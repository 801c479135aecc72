"""Whole conversations through a real flowsvc over gRPC: the shipped templates, end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import grpc
import pytest

from flowsvc.engine import REFERENCE_ALPHABET
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat, option_ids

pytestmark = pytest.mark.usefixtures("seeded")
TEMPLATES = Path(__file__).parents[1] / "flowsvc" / "default_templates"
REFERENCE = re.compile(f"[{REFERENCE_ALPHABET}]{{6}}")


def order_coffee(chat: Chat, quantity: str = "2") -> str:
    """Walk the order flow from "hi" to a placed order; returns the order's reference."""
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("coffee", "Coffee")
    chat.say(quantity)
    chat.tap("pickup")
    chat.tap("yes")
    found = REFERENCE.search(chat.texts[-1])
    assert found, chat.texts
    return found.group()


def test_the_order_flow_shows_product_quantity_and_total(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)

    chat.say("Hi!")
    assert chat.last.outcome == flow_pb2.OUTCOME_STARTED
    assert chat.options == ["new_order", "support", "account"]
    menu = chat.bodies[0]
    assert {k: v for k, v in menu.items() if k != "interactive"} == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "interactive",
    }
    assert set(menu["interactive"]) == {"type", "header", "body", "footer", "action"}
    assert menu["interactive"]["action"]["buttons"][0] == {
        "type": "reply",
        "reply": {"id": "new_order", "title": "🛒 New Order"},
    }
    assert "steps" not in json.dumps(chat.bodies)

    chat.tap("new_order", "🛒 New Order")
    assert chat.bodies[-1]["interactive"]["type"] == "list"
    assert "set" not in json.dumps(chat.bodies)  # engine-only fields never reach Meta

    chat.tap("coffee", "Coffee")
    assert chat.last.conversation.current_step == "quantity"
    assert "How many Coffee" in chat.texts[-1]

    chat.say("two")
    assert chat.last.outcome == flow_pb2.OUTCOME_INVALID_INPUT
    assert chat.last.conversation.current_step == "quantity"

    chat.say("2")
    assert chat.texts[-1] == "Pickup or delivery?"
    assert chat.options == ["pickup", "delivery"]
    chat.tap("pickup")
    assert "2 x Coffee = $7.00" in chat.texts[-1]
    assert chat.options == ["yes", "no"]

    chat.tap("yes")
    assert chat.last.outcome == flow_pb2.OUTCOME_COMPLETED
    assert not chat.last.HasField("conversation")
    reference = REFERENCE.search(chat.texts[-1])
    assert reference and "Order placed! Your order number is" in chat.texts[-1]

    result = stub.GetResult(flow_pb2.GetResultRequest(reference=reference.group())).result
    assert (result.template_name, result.customer.phone_number) == ("new_order", "16505551234")
    assert result.context["quantity"] == 2
    assert result.context["total"] == "7.00"
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_no_cancels_the_order_and_stores_nothing(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("tea", "Tea")
    chat.say("3")
    chat.tap("pickup")
    assert "3 x Tea = $7.50" in chat.texts[-1]

    chat.tap("no")

    assert "cancelled" in chat.texts[-1]
    assert not chat.last.HasField("conversation")
    assert not stub.ListResults(flow_pb2.ListResultsRequest()).results


def test_track_order_finds_only_the_customers_own_order(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    alice, bob = Chat(stub, "15550000001"), Chat(stub, "15550000002")
    reference = order_coffee(alice)

    bob.say("track order")
    assert bob.last.conversation.flow == "support"
    bob.tap("track_order")
    bob.say(reference)
    assert bob.last.outcome == flow_pb2.OUTCOME_INVALID_INPUT

    alice.say("track order")
    alice.tap("track_order")
    alice.say(reference.lower())
    assert alice.last.outcome == flow_pb2.OUTCOME_ADVANCED
    assert reference in " ".join(alice.texts)
    assert "2 x Coffee" in " ".join(alice.texts)


def test_my_orders_lists_the_customers_recent_orders(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    chat = Chat(stub)
    first, second = order_coffee(chat, "1"), order_coffee(chat, "4")

    chat.say("my orders")
    assert chat.last.conversation.flow == "account"
    chat.tap("orders")

    listing = " ".join(chat.texts)
    assert first in listing and second in listing
    assert listing.index(second) < listing.index(first)  # newest first


def test_cancel_menu_and_back_work_in_any_state(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("coffee", "Coffee")

    chat.say("back")
    assert chat.last.outcome == flow_pb2.OUTCOME_WENT_BACK
    assert chat.last.conversation.current_step == "initial"
    assert chat.last.conversation.flow == "new_order"

    chat.say("menu")
    assert chat.last.outcome == flow_pb2.OUTCOME_RESTARTED
    assert chat.last.conversation.flow == "main_menu"

    chat.say("Cancel")
    assert chat.last.outcome == flow_pb2.OUTCOME_CANCELLED
    assert not chat.last.HasField("conversation")


def test_a_tap_on_an_old_menu_resends_the_current_step(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")

    chat.tap("support")  # a button of the main menu, which is no longer on screen

    assert chat.last.outcome == flow_pb2.OUTCOME_STALE_SELECTION
    assert chat.last.conversation.flow == "new_order"
    assert chat.bodies[-1]["interactive"]["type"] == "list"


def test_an_image_gets_a_short_answer_and_the_current_step(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")

    chat.send(chat.message(unsupported_type="image"))

    assert chat.last.outcome == flow_pb2.OUTCOME_UNSUPPORTED
    assert chat.bodies[0]["type"] == "text"
    assert chat.options == ["new_order", "support", "account"]


def test_unknown_first_message_starts_the_default_template(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("this is fine")
    assert chat.last.conversation.flow == "main_menu"


def test_a_conversation_survives_a_template_update_on_its_version(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    chat.tap("coffee", "Coffee")
    template = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="new_order")).template
    template.menu_structure["steps"]["complete"]["prompt"] = "New wording {order_id}"
    template.menu_structure["translations"]["es"]["steps.complete.prompt"] = "Nuevo {order_id}"
    stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=flow_pb2.TemplateDefinition(
                name="new_order",
                trigger_keywords=template.trigger_keywords,
                menu_structure=template.menu_structure,
            )
        )
    )

    chat.say("2")
    chat.tap("pickup")
    chat.tap("yes")
    assert chat.last.outcome == flow_pb2.OUTCOME_COMPLETED
    assert "Order placed!" in chat.texts[-1]  # version 1's wording

    newcomer = Chat(stub, "15550000009")
    order_coffee(newcomer)
    assert newcomer.texts[-1].startswith("New wording")


def valid_input(step: dict[str, Any], reference: str) -> str:
    """A text the step accepts."""
    if step.get("lookup") == "order":
        return reference
    rule = step.get("validation")
    kind = rule.get("type") if isinstance(rule, dict) else rule
    if kind == "integer" and isinstance(rule, dict):
        return str(rule.get("min", 2))
    samples = {"number": "2", "decimal": "2.5", "yes_no": "yes", "email": "a@example.com"}
    return samples.get(kind or "", "hello")


@pytest.mark.parametrize("name", ["main_menu", "new_order", "support", "account", "booking"])
def test_every_branch_of_every_shipped_template_leads_somewhere(
    stub: flow_pb2_grpc.FlowServiceStub, name: str
) -> None:
    """Walk every option of every step, each path from a fresh StartConversation, until the
    conversation ends or comes back to a step already seen on the path. No path may get stuck or
    run on forever. The customer has placed an order, so that order lookups find one."""
    menus = {p.stem: json.loads(p.read_text())["menu_structure"] for p in TEMPLATES.glob("*.json")}
    chat = Chat(stub, "15559999999")
    reference = order_coffee(chat)  # the customer wrote: starts may send free-form messages
    paths: list[list[tuple[str, str]]] = [[]]
    endings = switches = 0
    while paths:
        path = paths.pop()
        assert len(path) <= 10, f"no end after {path}"
        response = stub.StartConversation(
            flow_pb2.StartConversationRequest(customer=chat.customer, template_name=name)
        )
        bodies = [json.loads(m.body_json) for m in response.messages]
        conversation: flow_pb2.Conversation | None = response.conversation
        seen = [(response.conversation.flow, response.conversation.current_step)]
        for kind, value in path:
            chat.tap(value) if kind == "tap" else chat.say(value)
            assert chat.last is not None and chat.bodies, path
            assert chat.last.outcome not in (
                flow_pb2.OUTCOME_STALE_SELECTION,
                flow_pb2.OUTCOME_INVALID_INPUT,
            ), (path, chat.texts)
            bodies = chat.bodies
            conversation = chat.last.conversation if chat.last.HasField("conversation") else None
            if conversation is not None:
                seen.append((conversation.flow, conversation.current_step))
        if conversation is None or conversation.HasField("handoff"):
            endings += 1  # ended, or handed to people (who say where the bot takes over)
            continue
        if path and seen[-1] in seen[:-1]:
            continue  # a loop back, e.g. "Back to menu": fine, and explored already
        if conversation.flow != name:
            switches += 1
            continue  # switched to another template, which its own run explores
        if "call" in menus[conversation.flow]["steps"].get(conversation.current_step, {}):
            endings += 1  # waits for the business's API: tests/test_calls.py follows it on
            continue
        interactive = [body for body in bodies if body["type"] == "interactive"]
        if interactive:
            paths += [path + [("tap", option)] for option in option_ids(interactive[-1])]
        else:
            step = menus[conversation.flow]["steps"][conversation.current_step]
            paths.append(path + [("say", valid_input(step, reference))])
    assert endings + switches > 0


def copy_of_new_order(stub: flow_pb2_grpc.FlowServiceStub, name: str, *, orders: bool) -> None:
    """new_order under another name and keyword, declaring (or not) that its results are orders."""
    template = json.loads((TEMPLATES / "new_order.json").read_text("utf-8"))
    menu = template["menu_structure"] | {"orders": orders, "language_keywords": {}}
    definition = flow_pb2.TemplateDefinition(name=name, trigger_keywords=[name])
    definition.menu_structure.update(menu)
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition))


def order_through(chat: Chat, keyword: str) -> str:
    chat.say(keyword)
    chat.tap("coffee", "Coffee")
    chat.say("2")
    chat.tap("pickup")
    chat.tap("yes")
    found = REFERENCE.search(chat.texts[-1])
    assert found, chat.texts
    return found.group()


def test_a_template_that_declares_orders_is_listed_and_tracked_whatever_its_name(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    copy_of_new_order(stub, "shop", orders=True)
    copy_of_new_order(stub, "quote", orders=False)
    chat = Chat(stub)
    ordered, quoted = order_through(chat, "shop"), order_through(chat, "quote")

    chat.say("my orders")
    chat.tap("orders")
    listing = chat.texts[-1]
    chat.tap("done")
    chat.say("track order")
    chat.tap("track_order")
    chat.say(ordered)
    tracked = chat.last.outcome
    chat.say("cancel")
    chat.say("track order")
    chat.tap("track_order")
    chat.say(quoted)

    assert ordered in listing and "2 x Coffee" in listing
    assert quoted not in listing
    assert tracked == flow_pb2.OUTCOME_ADVANCED
    assert chat.last.outcome == flow_pb2.OUTCOME_INVALID_INPUT
