"""Customers walking the shipped flows, and the webhook payloads Meta would send for them."""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass, field
from typing import Any

from tests.payloads import load_webhook

WABA = "102290129340398"
BUSINESSES = {"106540352242922": "15550783881", "106540352242923": "15550783882"}

# (kind, id or text, title, description)
Step = tuple[str, str, str, str]
HI: Step = ("text", "hi", "", "")
NEW_ORDER: Step = ("button", "new_order", "🛒 New Order", "")

SCRIPTS: dict[str, list[Step]] = {
    # hi -> New Order -> Coffee -> "2" -> Pickup -> Yes: one order stored, the conversation ended.
    "order": [
        HI,
        NEW_ORDER,
        ("row", "coffee", "Coffee", "$3.50"),
        ("text", "2", "", ""),
        ("button", "pickup", "🏪 Pickup", ""),
        ("button", "yes", "✅ Yes", ""),
    ],
    "support": [
        HI,
        ("button", "support", "💬 Support", ""),
        ("button", "faq", "❓ FAQ", ""),
        ("row", "hours", "Opening hours", ""),
        ("button", "done", "That's all", ""),
    ],
    "account": [
        ("text", "my account", "", ""),
        ("button", "orders", "📦 My Orders", ""),
        ("button", "done", "That's all", ""),
    ],
    # Leaves a conversation waiting for a quantity: it must still offer a way on.
    "abandon": [HI, NEW_ORDER, ("row", "tea", "Tea", "$2.50")],
    "cancel": [HI, NEW_ORDER, ("text", "cancel", "", "")],
    # Asks for a person (support's "Talk to a person" hands off), then writes twice: recorded,
    # emitted as customer_message events, answered by no bot reply.
    # Starts the timer template and says nothing more: reminded once, then ended, by whichever
    # flowsvc fires the timers (exactly once each, through kills and outages).
    "silent": [("text", "remind me", "", "")],
    # The shipped booking flow up to its call: "2" guests queues a GET /slots that a gateway runs
    # against the business stand-in; its result (the free times, or the apology) continues the
    # flow exactly once, through kills and outages.
    "booking": [("text", "book", "", ""), ("text", "2", "", "")],
    "person": [
        HI,
        ("button", "support", "💬 Support", ""),
        ("button", "contact", "📞 Contact Us", ""),
        ("button", "person", "Talk to a person", ""),
        ("text", "my order is late", "", ""),
        ("text", "anyone there?", "", ""),
    ],
}
MIX = [
    ("order", 60),
    ("support", 15),
    ("account", 10),
    ("abandon", 8),
    ("cancel", 7),
    ("person", 5),
    ("silent", 5),
    ("booking", 5),
]
# The template the silent walk starts: short timers, so that they fire within a scenario.
TIMER_TEMPLATE: dict[str, Any] = {
    "name": "chaos_timer",
    "trigger_keywords": ["remind me"],
    "menu_structure": {
        "type": "text",
        "body": {"text": "What is your name?"},
        "steps": {
            "initial": {
                "context_key": "name",
                "next_step": "done",
                "timeout": {
                    "after": "8s",
                    "remind": {"after": "3s", "text": "Still there? What is your name?"},
                    "end": 'We stopped here: send "remind me" to start again.',
                },
            },
            "done": {"prompt": "Thanks {name}.", "end_conversation": True, "save_result": False},
        },
    },
}
TIMER_STAGES = {"reminded": 1, "timed_out": 1}  # the timer turns a silent walk must leave
RESULTS = {"order": 1}  # flow_results rows a completed walk leaves
BURST_TEXTS = ["hi", "menu", "order", "help", "1", "2", "back", "cancel", "hello", "what?", "ok"]


@dataclass
class Customer:
    number: str
    business: str
    kind: str
    script: list[Step]
    burst: bool = False
    last_timestamp: int = 0
    ids: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.business, self.number)

    @property
    def expected_results(self) -> int | None:
        """How many results the walk must leave; None when its order is not deterministic."""
        if self.burst:
            return 0  # a burst has no taps: nothing can complete an order
        return RESULTS.get(self.kind, 0)


def make_customers(prefix: str, count: int, bursts: int, rng: random.Random) -> list[Customer]:
    """`count` customers (numbers `prefix` + 6 digits), the first `bursts` of them bursting."""
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    customers = []
    for i in range(count):
        business = list(BUSINESSES)[i % len(BUSINESSES)]
        number = f"{prefix}{i:06d}"
        if i < bursts:
            size = rng.randint(20, 26)
            script = [("text", rng.choice(BURST_TEXTS), "", "") for _ in range(size)]
            customers.append(Customer(number, business, "burst", script, burst=True))
        else:
            kind = rng.choices(kinds, weights)[0]
            customers.append(Customer(number, business, kind, list(SCRIPTS[kind])))
    return customers


def message_id(rng: random.Random) -> str:
    raw = b"\x15\x02\x00\x12\x18\x14" + rng.randbytes(20) + b"\x00"
    return "wamid.HBgL" + base64.b64encode(raw).decode()


def _shape(name: str) -> dict[str, Any]:
    """The one message of a webhook fixture: the model of what Meta sends."""
    [message] = load_webhook(name)["entry"][0]["changes"][0]["value"]["messages"]
    return dict(message)


_SHAPES = {
    "text": _shape("text"),
    "button": _shape("interactive_button_reply"),
    "row": _shape("interactive_list_reply"),
}


def inbound(customer: Customer, step: Step, mid: str, timestamp: int) -> dict[str, Any]:
    """One entry of `messages[]`, in the shape of the project's fixtures (tests/fixtures/)."""
    kind, value, title, description = step
    raw = _SHAPES[kind] | {"from": customer.number, "id": mid, "timestamp": str(timestamp)}
    if kind == "text":
        return raw | {"text": {"body": value}}
    raw["context"] = {"from": BUSINESSES[customer.business], "id": raw["context"]["id"]}
    if kind == "button":
        reply = {"type": "button_reply", "button_reply": {"id": value, "title": title}}
    else:
        row = {"id": value, "title": title} | ({"description": description} if description else {})
        reply = {"type": "list_reply", "list_reply": row}
    return raw | {"interactive": reply}


def payload(items: list[tuple[Customer, dict[str, Any]]]) -> bytes:
    """A webhook POST body holding these messages: one change per business number."""
    changes = []
    for business, display in BUSINESSES.items():
        mine = [(c, m) for c, m in items if c.business == business]
        if not mine:
            continue
        senders = {c.number: c for c, _ in mine}
        value = {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": display, "phone_number_id": business},
            "contacts": [
                {"profile": {"name": f"Chaos {n[-4:]}"}, "wa_id": n} for n in sorted(senders)
            ],
            "messages": [m for _, m in mine],
        }
        changes.append({"value": value, "field": "messages"})
    document = {"object": "whatsapp_business_account", "entry": [{"id": WABA, "changes": changes}]}
    return json.dumps(document, ensure_ascii=False).encode()
