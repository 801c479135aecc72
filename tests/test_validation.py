"""Template validation: a failing template per rule, one breaking many, and any JSON at all."""

import copy
import re
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from flowsvc.validation import (
    NAME_PATTERN,
    Violation,
    review_template,
    template_targets,
    template_type,
    validate_template,
)

KNOWN = {"shop", "support", "main_menu", "new_order"}
DELETE = object()

# A valid template that uses most of the format: list rows with `set`, a text step with
# validation and compute, a button step that branches, and two end steps.
SHOP: dict[str, Any] = {
    "type": "list",
    "header": {"type": "text", "text": "Coffee Corner"},
    "body": {"text": "Hi {contact_name}, what would you like?"},
    "footer": {"text": "Reply cancel at any time"},
    "action": {
        "button": "Menu",
        "sections": [
            {
                "title": "Drinks",
                "rows": [
                    {
                        "id": "coffee",
                        "title": "Coffee",
                        "description": "$3.50",
                        "set": {"price": "3.50"},
                    },
                    {"id": "tea", "title": "Tea", "set": {"price": "2.50"}},
                ],
            },
            {"title": "Help", "rows": [{"id": "support", "title": "Talk to us"}]},
        ],
    },
    "currency": "$",
    "expiry_hours": 24,
    "steps": {
        "initial": {
            "context_key": "product",
            "next_steps": {"support": "flow:support"},
            "next_step": "quantity",
        },
        "quantity": {
            "prompt": "How many {product_title}?",
            "validation": {"type": "integer", "min": 1, "max": 99},
            "context_key": "quantity",
            "error_message": "Please send a number from 1 to 99.",
            "compute": {"total": "price * quantity"},
            "next_step": "confirm",
        },
        "confirm": {
            "type": "button",
            "prompt": "{quantity} x {product_title} = {total:money}. Place the order?",
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
            "next_steps": {"yes": "done", "no": "cancelled"},
        },
        "done": {"prompt": "Order {order_id} placed.", "end_conversation": True},
        "cancelled": {"prompt": "Cancelled.", "end_conversation": True, "save_result": False},
    },
}


def changed(edits: dict[str, object], base: dict[str, Any] = SHOP) -> dict[str, Any]:
    """A copy of `base` with values set (or removed, for DELETE) at paths like 'a.b[1].c'."""
    menu = copy.deepcopy(base)
    for path, value in edits.items():
        parts = [
            int(p[1:-1]) if p.startswith("[") else p for p in re.findall(r"\[\d+\]|[^.\[]+", path)
        ]
        holder: Any = menu
        for part in parts[:-1]:
            holder = holder[part]
        if value is DELETE:
            del holder[parts[-1]]
        else:
            holder[parts[-1]] = value
    return menu


def problems(
    menu: object, *, name: object = "shop", keywords: object = ("coffee",)
) -> list[tuple[str, str]]:
    found = validate_template(name, keywords, menu, known_templates=KNOWN)  # type: ignore[arg-type]
    return [(v.field, v.description) for v in found]


def buttons(*ids: str) -> dict[str, Any]:
    return {"buttons": [{"type": "reply", "reply": {"id": i, "title": i.title()}} for i in ids]}


def test_the_base_template_is_valid() -> None:
    assert problems(SHOP) == []


@pytest.mark.parametrize(
    ("name", "keywords"),
    [
        pytest.param("main_menu", ["hi", "hello"], id="plain"),
        pytest.param("a", [], id="one-letter-no-keywords"),
        pytest.param("x" * 64, ["my orders", "Café"], id="longest-name"),
    ],
)
def test_valid_names_and_keywords(name: str, keywords: list[str]) -> None:
    assert problems(SHOP, name=name, keywords=keywords) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        pytest.param("Shop", "not a valid template name", id="uppercase"),
        pytest.param("1shop", "not a valid template name", id="leading-digit"),
        pytest.param("", "not a valid template name", id="empty"),
        pytest.param("x" * 65, "not a valid template name", id="too-long"),
        pytest.param("shop\n", "not a valid template name", id="trailing-newline"),
        pytest.param("new-order", "not a valid template name", id="dash"),
        pytest.param(5, "must be a string, not a number", id="not-a-string"),
    ],
)
def test_invalid_names(name: object, fragment: str) -> None:
    [(field, description)] = problems(SHOP, name=name)
    assert field == "name"
    assert fragment in description


@pytest.mark.parametrize(
    ("keywords", "field", "fragment"),
    [
        pytest.param(["hi", "  "], "trigger_keywords[1]", "is empty", id="blank"),
        pytest.param(["x" * 101], "trigger_keywords[0]", "at most 100", id="too-long"),
        pytest.param(
            ["Café", "cafe"], "trigger_keywords[1]", "repeats trigger_keywords[0]", id="accents"
        ),
        pytest.param(["My  Orders", "my orders"], "trigger_keywords[1]", "repeats", id="spaces"),
        pytest.param(["!!!"], "trigger_keywords[0]", "no letters or digits", id="no-words"),
        pytest.param(["hi", 5], "trigger_keywords[1]", "must be a string", id="not-a-string"),
        pytest.param("hi", "trigger_keywords", "must be a list of strings", id="a-string"),
        pytest.param(
            [f"k{i}" for i in range(51)], "trigger_keywords", "has 51 keywords", id="too-many"
        ),
    ],
)
def test_invalid_keywords(keywords: object, field: str, fragment: str) -> None:
    [(found_field, description)] = problems(SHOP, keywords=keywords)
    assert found_field == field
    assert fragment in description


# Each case breaks one rule; the list is every violation expected, as (field, fragment).
CASES = [
    # Format of the first message and the top level
    pytest.param(
        {"stpes": {}}, [("menu_structure.stpes", "did you mean 'steps'?")], id="unknown-top-key"
    ),
    pytest.param(
        {"type": "carousel"},
        [("menu_structure.type", "must be 'button', 'list' or 'text'")],
        id="bad-type",
    ),
    pytest.param({"body": DELETE}, [("menu_structure.body", "is missing")], id="body-missing"),
    pytest.param(
        {"body": "Hi"}, [("menu_structure.body", "must be an object")], id="body-bare-string"
    ),
    pytest.param({"body.text": "  "}, [("menu_structure.body.text", "is empty")], id="body-blank"),
    pytest.param(
        {"body.txt": "x"},
        [("menu_structure.body.txt", "did you mean 'text'?")],
        id="body-unknown-key",
    ),
    pytest.param(
        {"header.type": "image"},
        [("menu_structure.header.type", "only text headers")],
        id="header-media",
    ),
    pytest.param(
        {"header.text": "x" * 61},
        [("menu_structure.header.text", "at most 60")],
        id="header-too-long",
    ),
    pytest.param(
        {"footer.text": "x" * 61},
        [("menu_structure.footer.text", "at most 60")],
        id="footer-too-long",
    ),
    pytest.param(
        {"body.text": "x" * 4097},
        [("menu_structure.body.text", "at most 4096")],
        id="list-body-too-long",
    ),
    pytest.param(
        {"currency": "EURO$$"},
        [("menu_structure.currency", "longer than 5")],
        id="currency-too-long",
    ),
    pytest.param(
        {"currency": ""}, [("menu_structure.currency", "non-empty string")], id="currency-empty"
    ),
    pytest.param(
        {"expiry_hours": 0}, [("menu_structure.expiry_hours", "from 1 to 720")], id="expiry-zero"
    ),
    pytest.param(
        {"expiry_hours": 721},
        [("menu_structure.expiry_hours", "from 1 to 720")],
        id="expiry-too-long",
    ),
    pytest.param(
        {"expiry_hours": True}, [("menu_structure.expiry_hours", "from 1 to 720")], id="expiry-bool"
    ),
    pytest.param(
        {"expiry_hours": "24"},
        [("menu_structure.expiry_hours", "from 1 to 720")],
        id="expiry-string",
    ),
    # WhatsApp's list limits
    pytest.param(
        {"action.button": "x" * 21},
        [("menu_structure.action.button", "at most 20")],
        id="list-label-too-long",
    ),
    pytest.param(
        {"action.button": ""},
        [("menu_structure.action.button", "label is empty")],
        id="list-label-empty",
    ),
    pytest.param(
        {"action.button": DELETE},
        [("menu_structure.action.button", "is missing")],
        id="list-label-missing",
    ),
    pytest.param(
        {"action.sections[0].title": "x" * 25},
        [("menu_structure.action.sections[0].title", "at most 24")],
        id="section-title-too-long",
    ),
    pytest.param(
        {"action.sections[0].title": DELETE},
        [("menu_structure.action.sections[0].title", "several sections")],
        id="section-title-missing",
    ),
    pytest.param(
        {"action.sections[0].rows[0].title": "x" * 25},
        [("menu_structure.action.sections[0].rows[0].title", "at most 24")],
        id="row-title-too-long",
    ),
    pytest.param(
        {"action.sections[0].rows[0].description": "x" * 73},
        [("menu_structure.action.sections[0].rows[0].description", "at most 72")],
        id="row-description-too-long",
    ),
    pytest.param(
        {"action.sections[0].rows[1].id": "t" * 201},
        [("menu_structure.action.sections[0].rows[1].id", "at most 200")],
        id="row-id-too-long",
    ),
    pytest.param(
        {"action.sections[0].rows[1].id": "support"},
        [
            (
                "menu_structure.action.sections[1].rows[0].id",
                "already used by menu_structure.action.sections[0].rows[1].id",
            )
        ],
        id="row-id-duplicate-across-sections",
    ),
    pytest.param(
        {"action.sections[0].rows[1].id": " tea"},
        [("menu_structure.action.sections[0].rows[1].id", "leading or trailing spaces")],
        id="row-id-spaces",
    ),
    pytest.param(
        {"action.sections[0].rows[1].price": "2.50"},
        [("menu_structure.action.sections[0].rows[1].price", "unknown key 'price'")],
        id="row-unknown-key",
    ),
    pytest.param(
        {"action.sections[1].rows": []},
        [
            (
                "menu_structure.action.sections[1].rows",
                "is empty: a section needs at least one row",
            ),
            (
                "menu_structure.steps.initial.next_steps.support",
                "is not a choice of the first message, whose ids are 'coffee', 'tea'",
            ),
        ],
        id="section-without-rows",
    ),
    pytest.param(
        {
            "action.sections": [
                {"title": f"S{i}", "rows": [{"id": f"r{i}", "title": "R", "set": {"price": "1"}}]}
                for i in range(11)
            ]
        },
        [
            ("menu_structure.action.sections", "has 11 sections"),
            ("menu_structure.action.sections", "has 11 rows in all"),
            (
                "menu_structure.steps.initial.next_steps.support",
                "is not a choice of the first message",
            ),
        ],
        id="too-many-sections",
    ),
    pytest.param(
        {
            "action.sections[0].rows": [
                {"id": f"r{i}", "title": "R", "set": {"price": "1"}} for i in range(10)
            ]
        },
        [
            (
                "menu_structure.action.sections",
                "has 11 rows in all; WhatsApp allows at most 10 across all sections",
            )
        ],
        id="eleven-rows-in-all",
    ),
    pytest.param(
        {"action.sections": []},
        [
            ("menu_structure.action.sections", "has 0 sections"),
            ("menu_structure.steps.initial.next_steps.support", "can never be chosen"),
            ("menu_structure.steps.quantity.prompt", "placeholder {product_title} names nothing"),
            ("menu_structure.steps.quantity.compute.total", "reads 'price', which nothing"),
            ("menu_structure.steps.confirm.prompt", "placeholder {product_title} names nothing"),
        ],
        id="no-sections",
    ),
    pytest.param(
        {"action.sections[0].rows[0].set": {"Price": "1"}},
        [("menu_structure.action.sections[0].rows[0].set.Price", "not a valid name")],
        id="row-set-bad-key",
    ),
    pytest.param(
        {"action.sections[0].rows[0].set": {"price": [3, 50]}},
        [("menu_structure.action.sections[0].rows[0].set.price", "literal values only")],
        id="row-set-not-scalar",
    ),
    # WhatsApp's button limits (on the confirm step's own message)
    pytest.param(
        {
            "steps.confirm.action": buttons("yes", "no", "later", "never"),
            "steps.confirm.next_steps.later": "done",
            "steps.confirm.next_steps.never": "done",
        },
        [("menu_structure.steps.confirm.action.buttons", "has 4 buttons")],
        id="four-buttons",
    ),
    pytest.param(
        {
            "steps.confirm.action.buttons": [],
            "steps.confirm.next_steps": DELETE,
            "steps.confirm.next_step": "done",
        },
        [
            ("menu_structure.steps.confirm.action.buttons", "has 0 buttons"),
            ("menu_structure.steps.confirm", "accepts any reply"),
            ("menu_structure.steps.cancelled", "unreachable"),
        ],
        id="no-buttons",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[0].reply.title": "x" * 21},
        [("menu_structure.steps.confirm.action.buttons[0].reply.title", "at most 20")],
        id="button-title-too-long",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[0].reply.title": "👍🏽" * 10},
        [],
        id="button-title-20-code-points",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[0].reply.title": "👍🏽" * 10 + "!"},
        [("menu_structure.steps.confirm.action.buttons[0].reply.title", "is 21 characters")],
        id="button-title-21-code-points",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[1].reply.title": "YES"},
        [
            (
                "menu_structure.steps.confirm.action.buttons[1].reply.title",
                "button titles must be unique",
            )
        ],
        id="button-titles-duplicate",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[1].reply.title": " "},
        [("menu_structure.steps.confirm.action.buttons[1].reply.title", "title is empty")],
        id="button-title-blank",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[1].reply.id": "yes"},
        [
            ("menu_structure.steps.confirm.action.buttons[1].reply.id", "ids must be unique"),
            ("menu_structure.steps.confirm.next_steps.no", "is not a choice"),
        ],
        id="button-ids-duplicate",
    ),
    pytest.param(
        {
            "steps.confirm.action.buttons[1].reply.id": "n" * 257,
            "steps.confirm.next_step": "cancelled",
        },
        [
            ("menu_structure.steps.confirm.action.buttons[1].reply.id", "at most 256"),
            ("menu_structure.steps.confirm.next_steps.no", "is not a choice"),
        ],
        id="button-id-too-long",
    ),
    pytest.param(
        {
            "steps.confirm.action.buttons[1].reply.id": "no ",
            "steps.confirm.next_steps.no ": "cancelled",
            "steps.confirm.next_steps.no": DELETE,
        },
        [("menu_structure.steps.confirm.action.buttons[1].reply.id", "leading or trailing spaces")],
        id="button-id-spaces",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[1].type": "url"},
        [("menu_structure.steps.confirm.action.buttons[1].type", "must be 'reply'")],
        id="button-type",
    ),
    pytest.param(
        {"steps.confirm.action.buttons[1].reply": DELETE},
        [
            ("menu_structure.steps.confirm.action.buttons[1].reply", "is missing"),
            ("menu_structure.steps.confirm.next_steps.no", "is not a choice"),
        ],
        id="button-reply-missing",
    ),
    pytest.param(
        {"steps.confirm.body": {"text": "x" * 1025}},
        [("menu_structure.steps.confirm.body.text", "at most 1024")],
        id="button-body-too-long",
    ),
    pytest.param(
        {"steps.confirm.prompt": "x" * 1025},
        [("menu_structure.steps.confirm.prompt", "at most 1024 (the prompt is the body")],
        id="prompt-as-button-body-too-long",
    ),
    pytest.param(
        {"steps.confirm.prompt": DELETE},
        [("menu_structure.steps.confirm.body", "is missing")],
        id="button-step-without-body-or-prompt",
    ),
    pytest.param(
        {
            "steps.confirm.action.buttons[0].set": {"answer": "yes"},
            "steps.confirm.action.buttons[1].reply.set": {"answer": "no"},
        },
        [],
        id="button-set-either-level",
    ),
    # Steps: shape and keys
    pytest.param({"steps": DELETE}, [("menu_structure.steps", "is missing")], id="steps-missing"),
    pytest.param(
        {"steps": []}, [("menu_structure.steps", "must be an object of steps")], id="steps-a-list"
    ),
    pytest.param(
        {"steps.start": {"prompt": "x", "end_conversation": True}, "steps.initial": DELETE},
        [
            ("menu_structure.steps.initial", "is missing"),
            ("menu_structure.steps.quantity.prompt", "{product_title} names nothing"),
            ("menu_structure.steps.confirm.prompt", "{product_title} names nothing"),
        ],
        id="initial-missing",
    ),
    pytest.param(
        {"steps.extra": 3},
        [
            ("menu_structure.steps.extra", "must be an object"),
            ("menu_structure.steps.extra", "unreachable"),
        ],
        id="step-not-object",
    ),
    pytest.param(
        {"steps.quantity.next_stpe": "confirm"},
        [("menu_structure.steps.quantity.next_stpe", "did you mean 'next_step'?")],
        id="step-key-typo",
    ),
    pytest.param(
        {"steps.quantity.prompt": 5},
        [("menu_structure.steps.quantity.prompt", "must be a string")],
        id="prompt-not-string",
    ),
    pytest.param(
        {"steps.quantity.prompt": "x" * 4097},
        [("menu_structure.steps.quantity.prompt", "at most 4096")],
        id="prompt-too-long",
    ),
    pytest.param(
        {"steps.quantity.error_message": ""},
        [("menu_structure.steps.quantity.error_message", "is empty")],
        id="error-message-empty",
    ),
    pytest.param(
        {"steps.confirm.type": "buttons"},
        [
            (
                "menu_structure.steps.confirm.type",
                "is 'buttons': must be 'button', 'list' or 'text', 'cta_url', "
                "'location_request_message' or 'flow', or a media type "
                "('image', 'document', 'video', 'audio', 'sticker') (did you mean 'button'?)",
            ),
        ],
        id="step-type-typo",
    ),
    pytest.param(
        {"steps.confirm.type": DELETE},
        [
            ("menu_structure.steps.confirm.type", "is missing: this step has action but no type"),
        ],
        id="step-action-without-type",
    ),
    pytest.param(
        {"steps.initial.body": {"text": "x"}},
        [("menu_structure.steps.initial.body", "top of menu_structure")],
        id="initial-with-own-message",
    ),
    pytest.param(
        {"steps.quantity.prompt": DELETE},
        [("menu_structure.steps.quantity", "sends nothing when entered")],
        id="step-sends-nothing",
    ),
    pytest.param({"steps.cancelled.prompt": DELETE}, [], id="end-step-without-prompt"),
    pytest.param(
        {"steps.done.end_conversation": "yes"},
        [
            ("menu_structure.steps.done.end_conversation", "true or false"),
            ("menu_structure.steps.done", "customer would be stuck"),
        ],
        id="end-not-bool",
    ),
    pytest.param(
        {"steps.quantity.save_result": True},
        [("menu_structure.steps.quantity.save_result", "only applies")],
        id="save-result-without-end",
    ),
    pytest.param(
        {"steps.done.save_result": "no"},
        [("menu_structure.steps.done.save_result", "true or false")],
        id="save-result-not-bool",
    ),
    # Targets
    pytest.param(
        {"steps.quantity.next_step": "confirmation"},
        [
            (
                "menu_structure.steps.quantity.next_step",
                "target 'confirmation' names no step of this template and no template (did you "
                "mean 'confirm'?)",
            ),
        ],
        id="dangling-step-reported-once",
    ),
    pytest.param(
        {"steps.initial.next_steps.support": "flow:suport"},
        [
            (
                "menu_structure.steps.initial.next_steps.support",
                "names no template 'suport' (did you mean 'flow:support'?)",
            )
        ],
        id="dangling-flow",
    ),
    pytest.param(
        {"steps.initial.next_steps.support": "order_flow"},
        [("menu_structure.steps.initial.next_steps.support", "(did you mean 'flow:new_order'?)")],
        id="guide-flow-no-template",
    ),
    pytest.param(
        {"steps.initial.next_steps.support": "support_flow"}, [], id="guide-flow-form-accepted"
    ),
    pytest.param({"steps.initial.next_steps.support": "flow:shop"}, [], id="own-name-is-known"),
    pytest.param(
        {"steps.initial.next_steps.support": "support"},
        [("menu_structure.steps.initial.next_steps.support", "write 'flow:support'")],
        id="bare-template-name",
    ),
    pytest.param(
        {"steps.initial.next_steps.support": 5},
        [
            (
                "menu_structure.steps.initial.next_steps.support",
                "must be a step name or 'flow:<template>'",
            )
        ],
        id="target-not-string",
    ),
    # next_steps against the choices offered
    pytest.param(
        {"steps.initial.next_steps.suport": "flow:support"},
        [
            (
                "menu_structure.steps.initial.next_steps.suport",
                "is not a choice of the first message, whose ids are 'coffee', 'tea', 'support' "
                "(did you mean 'support'?)",
            )
        ],
        id="next-steps-key-not-offered",
    ),
    pytest.param(
        {"steps.quantity.next_steps": {"yes": "confirm"}},
        [
            (
                "menu_structure.steps.quantity.next_steps.yes",
                "can never be chosen: the message of step 'quantity' offers no buttons or list "
                "rows",
            )
        ],
        id="next-steps-on-text-step",
    ),
    pytest.param(
        {"steps.confirm.next_steps.no": DELETE},
        [
            (
                "menu_structure.steps.confirm.next_steps",
                "choice 'no' of the message of step 'confirm' is not handled",
            ),
            ("menu_structure.steps.cancelled", "unreachable"),
        ],
        id="choice-not-handled",
    ),
    pytest.param(
        {"steps.confirm.next_steps": "done"},
        [
            ("menu_structure.steps.confirm.next_steps", "must be an object"),
            ("menu_structure.steps.confirm", "customer would be stuck"),
            ("menu_structure.steps.done", "unreachable"),
            ("menu_structure.steps.cancelled", "unreachable"),
        ],
        id="next-steps-not-object",
    ),
    # Reachability and dead ends
    pytest.param(
        {"steps.orphan": {"prompt": "x", "end_conversation": True}},
        [("menu_structure.steps.orphan", "step 'orphan' is unreachable")],
        id="unreachable",
    ),
    pytest.param(
        {
            "steps.confirm.next_steps.no": "stuck",
            "steps.stuck": {"prompt": "Hmm."},
            "steps.cancelled": DELETE,
        },
        [("menu_structure.steps.stuck", "the customer would be stuck here")],
        id="dead-end",
    ),
    pytest.param(
        {"steps.done.next_step": "confirm"},
        [("menu_structure.steps.done.next_step", "is never used: this step ends the conversation")],
        id="end-with-next-step",
    ),
    pytest.param(
        {"steps.done.validation": "number"},
        [("menu_structure.steps.done.validation", "gets no reply")],
        id="end-with-validation",
    ),
    pytest.param(
        {"steps.done.lookup": "order"},
        [("menu_structure.steps.done.lookup", "gets none")],
        id="end-with-order-lookup",
    ),
    pytest.param(
        {"steps.done.type": "button", "steps.done.action": buttons("again")},
        [("menu_structure.steps.done.end_conversation", "could never be answered")],
        id="end-with-buttons",
    ),
    # Replies that would be thrown away
    pytest.param(
        {
            "steps.quantity.validation": DELETE,
            "steps.quantity.context_key": DELETE,
            "steps.quantity.prompt": "Anything else?",
            "steps.quantity.compute": DELETE,
            "steps.confirm.prompt": "Place the order?",
        },
        [("menu_structure.steps.quantity", "accepts any reply and ignores it")],
        id="reply-ignored",
    ),
    pytest.param(
        {
            "steps.initial.context_key": DELETE,
            "steps.quantity.prompt": "How many?",
            "steps.confirm.prompt": "{quantity} for {total:money}?",
        },
        [],
        id="rows-with-set-are-remembered",
    ),
    # validation
    pytest.param(
        {"steps.quantity.validation": "numbr"},
        [
            (
                "menu_structure.steps.quantity.validation",
                "unknown validation 'numbr' (did you mean 'number'?)",
            )
        ],
        id="validation-typo",
    ),
    pytest.param(
        {"steps.quantity.validation": {"type": "number"}},
        [("menu_structure.steps.quantity.validation.type", "only a shorthand")],
        id="validation-number-object",
    ),
    pytest.param(
        {"steps.quantity.validation": 5},
        [("menu_structure.steps.quantity.validation", "must be a string such as 'number'")],
        id="validation-not-string-or-object",
    ),
    pytest.param(
        {"steps.quantity.validation.min": 100},
        [("menu_structure.steps.quantity.validation", "min 100 is greater than max 99")],
        id="validation-min-over-max",
    ),
    pytest.param(
        {"steps.quantity.validation.min": 1.5},
        [("menu_structure.steps.quantity.validation.min", "must be a whole number")],
        id="validation-integer-fraction",
    ),
    pytest.param(
        {"steps.quantity.validation.maximum": 5},
        [("menu_structure.steps.quantity.validation.maximum", "did you mean 'max'?")],
        id="validation-unknown-option",
    ),
    pytest.param(
        {"steps.quantity.validation": {"type": "decimal", "places": 11}},
        [("menu_structure.steps.quantity.validation.places", "from 0 to 10")],
        id="validation-places",
    ),
    pytest.param(
        {"steps.quantity.validation": {"type": "regex"}},
        [("menu_structure.steps.quantity.validation.pattern", "is missing")],
        id="regex-without-pattern",
    ),
    pytest.param(
        {"steps.quantity.validation": {"type": "regex", "pattern": "([0-9]+"}},
        [
            (
                "menu_structure.steps.quantity.validation.pattern",
                "does not compile: missing ), unterminated subpattern",
            )
        ],
        id="regex-does-not-compile",
    ),
    pytest.param(
        {"steps.quantity.validation": {"type": "regex", "pattern": "[0-9]+", "flags": "x"}},
        [("menu_structure.steps.quantity.validation.flags", "must be 'i'")],
        id="regex-flags",
    ),
    pytest.param(
        {"steps.quantity.validation": {"type": "text", "min_length": 10, "max_length": 5}},
        [
            (
                "menu_structure.steps.quantity.validation",
                "min_length 10 is greater than max_length 5",
            )
        ],
        id="text-lengths",
    ),
    pytest.param({"steps.quantity.validation": {"type": "email"}}, [], id="email-object"),
    pytest.param(
        {"steps.quantity.next_step": DELETE, "steps.quantity.next_steps": {"x": "confirm"}},
        [
            ("menu_structure.steps.quantity.next_steps.x", "can never be chosen"),
            ("menu_structure.steps.quantity.next_step", "a step with validation needs next_step"),
        ],
        id="validation-without-next-step",
    ),
    # context_key, set, compute, lookup
    pytest.param(
        {"steps.quantity.context_key": "Quantity"},
        [
            ("menu_structure.steps.quantity.context_key", "'Quantity' is not a valid name"),
            (
                "menu_structure.steps.quantity.compute.total",
                "reads 'quantity', which nothing in this template sets",
            ),
            ("menu_structure.steps.confirm.prompt", "placeholder {quantity} names nothing"),
        ],
        id="context-key-not-identifier",
    ),
    pytest.param(
        {
            "steps.initial.context_key": "order_id",
            "steps.quantity.prompt": "How many?",
            "steps.confirm.prompt": "Place the order?",
        },
        [("menu_structure.steps.initial.context_key", "'order_id' is a built-in name")],
        id="context-key-built-in",
    ),
    pytest.param({"steps.quantity.set": {"unit": "cups"}}, [], id="step-set"),
    pytest.param(
        {"steps.quantity.set": {"unit": {"a": 1}}},
        [("menu_structure.steps.quantity.set.unit", "literal values only")],
        id="step-set-not-scalar",
    ),
    pytest.param(
        {"steps.quantity.set": ["unit"]},
        [("menu_structure.steps.quantity.set", "must be an object")],
        id="step-set-not-object",
    ),
    pytest.param(
        {"steps.quantity.compute.total": "price *"},
        [
            (
                "menu_structure.steps.quantity.compute.total",
                "expression 'price *' ends where a number or name is expected",
            )
        ],
        id="compute-incomplete",
    ),
    pytest.param(
        {"steps.quantity.compute.total": "price % 2"},
        [("menu_structure.steps.quantity.compute.total", "has '%' at character 7")],
        id="compute-bad-operator",
    ),
    pytest.param(
        {"steps.quantity.compute.total": "price * (quantity"},
        [("menu_structure.steps.quantity.compute.total", "never closed")],
        id="compute-unclosed",
    ),
    pytest.param(
        {"steps.quantity.compute.total": "price / 0"},
        [("menu_structure.steps.quantity.compute.total", "divides by zero")],
        id="compute-divide-by-zero",
    ),
    pytest.param(
        {"steps.quantity.compute.total": "prise * quantity"},
        [
            (
                "menu_structure.steps.quantity.compute.total",
                "reads 'prise', which nothing in this template sets (no context_key, set or "
                "compute key) (did you mean 'price'?)",
            )
        ],
        id="compute-unknown-name",
    ),
    pytest.param(
        {"steps.quantity.compute.total": "-(price + 1) * quantity / 2"},
        [],
        id="compute-full-grammar",
    ),
    pytest.param(
        {"steps.quantity.compute.total": 3},
        [("menu_structure.steps.quantity.compute.total", "must be an expression string")],
        id="compute-not-string",
    ),
    pytest.param(
        {"steps.quantity.compute.Total": "price"},
        [("menu_structure.steps.quantity.compute.Total", "not a valid name")],
        id="compute-key-not-identifier",
    ),
    pytest.param(
        {"steps.quantity.lookup": "orders"},
        [
            (
                "menu_structure.steps.quantity.lookup",
                "must be 'order' or 'recent_orders', not 'orders' (did you mean 'order'?)",
            )
        ],
        id="lookup-unknown",
    ),
    # Placeholders
    pytest.param(
        {"steps.confirm.prompt": "{quantity} x = {totl:money}?"},
        [
            (
                "menu_structure.steps.confirm.prompt",
                "placeholder {totl} names nothing this template sets (no context_key, set or "
                "compute key 'totl') and no built-in (contact_name, order_id, recent_orders, "
                "previous_selection) (did you mean 'total'?)",
            )
        ],
        id="placeholder-unknown",
    ),
    pytest.param(
        {"steps.confirm.prompt": "{total:cash}?"},
        [("menu_structure.steps.confirm.prompt", "unknown format 'cash'")],
        id="placeholder-format",
    ),
    pytest.param(
        {"steps.confirm.prompt": "{ total }?"},
        [("menu_structure.steps.confirm.prompt", "looks like a placeholder but is not one")],
        id="placeholder-near-miss",
    ),
    pytest.param({"steps.confirm.prompt": "Sizes {S, M, L}?"}, [], id="literal-braces"),
    pytest.param(
        {"steps.done.prompt": "Order {order_total}"},
        [
            (
                "menu_structure.steps.done.prompt",
                '{order_total} is only known after a step with "lookup": "order"',
            )
        ],
        id="placeholder-needs-order-lookup",
    ),
    pytest.param(
        {"steps.quantity.lookup": "order", "steps.done.prompt": "Order {order_reference}"},
        [],
        id="placeholder-from-order-lookup",
    ),
    pytest.param(
        {"steps.confirm.prompt": "{quantity_title}?"},
        [("menu_structure.steps.confirm.prompt", "placeholder {quantity_title} names nothing")],
        id="placeholder-title-of-text-step",
    ),
    pytest.param(
        {"header.text": "{shop_name}"},
        [("menu_structure.header.text", "placeholder {shop_name} names nothing")],
        id="placeholder-in-header",
    ),
    pytest.param(
        {"steps.quantity.error_message": "{previous_selection} {nope}"},
        [("menu_structure.steps.quantity.error_message", "placeholder {nope} names nothing")],
        id="placeholder-in-error-message",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), CASES)
def test_each_rule(edits: dict[str, object], expected: list[tuple[str, str]]) -> None:
    found = problems(changed(edits))
    assert [field for field, _ in found] == [field for field, _ in expected], found
    for (_, description), (_, fragment) in zip(found, expected, strict=True):
        assert fragment in description


TEXT_MENU: dict[str, Any] = {
    "type": "text",
    "body": {"text": "Send your order number."},
    "steps": {
        "initial": {"lookup": "order", "next_step": "status"},
        "status": {
            "prompt": "{order_summary} on {order_date}",
            "end_conversation": True,
            "save_result": False,
        },
    },
}


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        pytest.param({}, [], id="valid"),
        pytest.param(
            {"body.text": "x" * 4097},
            [("menu_structure.body.text", "at most 4096")],
            id="body-too-long",
        ),
        pytest.param(
            {"action": buttons("a")},
            [("menu_structure.action", "a plain text message has no action")],
            id="action",
        ),
        pytest.param(
            {"header": {"type": "text", "text": "x"}},
            [("menu_structure.header", "has no header")],
            id="header",
        ),
        pytest.param(
            {"steps.initial.lookup": DELETE},
            [
                ("menu_structure.steps.initial", "accepts any reply and ignores it"),
                ("menu_structure.steps.status.prompt", "only known after"),
                ("menu_structure.steps.status.prompt", "only known after"),
            ],
            id="reply-ignored",
        ),
    ],
)
def test_text_templates(edits: dict[str, object], expected: list[tuple[str, str]]) -> None:
    found = problems(changed(edits, TEXT_MENU))
    assert [field for field, _ in found] == [field for field, _ in expected], found
    for (_, description), (_, fragment) in zip(found, expected, strict=True):
        assert fragment in description


def test_choices_that_all_lead_to_one_step_and_are_forgotten() -> None:
    menu = changed(
        {
            "action.sections[0].rows[0].set": DELETE,
            "action.sections[0].rows[1].set": DELETE,
            "steps.initial": {"next_step": "quantity"},
            "steps.quantity.prompt": "How many?",
            "steps.quantity.compute": DELETE,
            "steps.confirm.prompt": "Place the order?",
        }
    )
    assert problems(menu) == [
        (
            "menu_structure.steps.initial",
            "every choice of the first message leads to 'quantity' and none is remembered: add "
            "a context_key to store the choice, next_steps to branch on it, or set on the options",
        )
    ]


def test_a_template_breaking_many_rules_gets_every_violation() -> None:
    menu = {
        "type": "button",
        "header": {"type": "image", "text": "Logo"},
        "body": {"text": "Hello {nme}!"},
        "colour": "red",
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "order", "title": "Order something great today"}},
                {"type": "reply", "reply": {"id": "order", "title": "Help"}},
                {"type": "reply", "reply": {"id": "help", "title": "help"}},
                {"type": "reply", "reply": {"id": "more", "title": "More"}},
            ]
        },
        "steps": {
            "initial": {"next_steps": {"order": "order_flow", "hlep": "help"}},
            "help": {"prompt": "What's wrong?", "next_stpe": "thanks"},
            "thanks": {"prompt": "Thanks", "end_conversation": True, "next_step": "help"},
            "ask": {
                "prompt": "Quantity?",
                "validation": {"type": "integer", "min": 5, "max": 1},
                "context_key": "contact_name",
                "compute": {"total": "price *"},
                "lookup": "orders",
            },
        },
    }
    assert validate_template("Shop", ["hi", "HI", ""], menu, known_templates={"new_order"}) == [
        Violation(
            "name",
            "'Shop' is not a valid template name: start with a lowercase letter, then lowercase "
            "letters, digits or underscores, at most 64 characters",
        ),
        Violation(
            "trigger_keywords[1]",
            "'HI' repeats trigger_keywords[0] ('hi'): keywords match regardless of case and "
            "accents",
        ),
        Violation("trigger_keywords[2]", "is empty"),
        Violation(
            "menu_structure.colour",
            "unknown key 'colour': the keys allowed here are type, header, body, footer, action, "
            "steps, currency, expiry_hours, context_keys, orders, language, translations, texts, "
            "language_keywords",
        ),
        Violation(
            "menu_structure.body.text",
            "placeholder {nme} names nothing this template sets (no context_key, set or compute "
            "key 'nme') and no built-in (contact_name, order_id, recent_orders, "
            "previous_selection)",
        ),
        Violation(
            "menu_structure.header.text",
            "unknown key 'text': the keys allowed here are type, image",
        ),
        Violation(
            "menu_structure.header.image",
            'is missing: an image header needs {"link": "https://..."} or {"id": "<media id>"}',
        ),
        Violation(
            "menu_structure.action.buttons",
            "has 4 buttons; WhatsApp allows 1 to 3 (use a list message for more choices)",
        ),
        Violation(
            "menu_structure.action.buttons[0].reply.title",
            "title is 27 characters long; WhatsApp allows at most 20",
        ),
        Violation(
            "menu_structure.action.buttons[1].reply.id",
            "id 'order' is already used by menu_structure.action.buttons[0].reply.id: ids must be "
            "unique",
        ),
        Violation(
            "menu_structure.action.buttons[2].reply.title",
            "title 'help' is already used by menu_structure.action.buttons[1].reply.title: button "
            "titles must be unique",
        ),
        Violation(
            "menu_structure.steps.initial.next_steps.order",
            "target 'order_flow' names no step of this template and no template (did you mean "
            "'flow:new_order'?)",
        ),
        Violation(
            "menu_structure.steps.initial.next_steps.hlep",
            "'hlep' is not a choice of the first message, whose ids are 'order', 'help', 'more' "
            "(did you mean 'help'?)",
        ),
        Violation(
            "menu_structure.steps.initial.next_steps",
            "choice 'help' of the first message is not handled: tapping it would go nowhere; add "
            "it to next_steps, or add a next_step for other choices",
        ),
        Violation(
            "menu_structure.steps.initial.next_steps",
            "choice 'more' of the first message is not handled: tapping it would go nowhere; add "
            "it to next_steps, or add a next_step for other choices",
        ),
        Violation(
            "menu_structure.steps.help.next_stpe",
            "unknown key 'next_stpe' (did you mean 'next_step'?): the keys allowed here are "
            "prompt, type, header, body, footer, action, image, document, video, audio, sticker, "
            "next_steps, next_step, validation, "
            "context_key, error_message, set, compute, lookup, end_conversation, save_result, "
            "entry, template_replies, handoff, accept, rules, flow_fields",
        ),
        Violation(
            "menu_structure.steps.help",
            "step 'help' has no next_step, no next_steps and no end_conversation: the customer "
            "would be stuck here; say where the reply leads, or end the conversation",
        ),
        Violation(
            "menu_structure.steps.thanks.next_step",
            "is never used: this step ends the conversation (end_conversation is true); remove "
            "one or the other",
        ),
        Violation(
            "menu_structure.steps.ask.validation",
            "min 5 is greater than max 1: no input could pass",
        ),
        Violation(
            "menu_structure.steps.ask.context_key",
            "context_key 'contact_name' is a built-in name the engine fills in: pick another",
        ),
        Violation(
            "menu_structure.steps.ask.compute.total",
            "expression 'price *' ends where a number or name is expected",
        ),
        Violation(
            "menu_structure.steps.ask.lookup",
            "must be 'order' or 'recent_orders', not 'orders' (did you mean 'order'?)",
        ),
        Violation(
            "menu_structure.steps.ask",
            "step 'ask' has no next_step, no next_steps and no end_conversation: the customer "
            "would be stuck here; say where the reply leads, or end the conversation",
        ),
        Violation(
            "menu_structure.steps.thanks",
            "step 'thanks' is unreachable: no next_step or next_steps leads to it from 'initial' "
            '(mark it "entry": true if other services move conversations there)',
        ),
        Violation(
            "menu_structure.steps.ask",
            "step 'ask' is unreachable: no next_step or next_steps leads to it from 'initial' "
            '(mark it "entry": true if other services move conversations there)',
        ),
    ]


def test_template_type() -> None:
    assert [template_type({"type": kind}) for kind in ("button", "list", "text")] == [
        "button",
        "list",
        "text",
    ]
    with pytest.raises(ValueError, match="menu_structure.type"):
        template_type({"type": "carousel"})


@pytest.mark.parametrize(
    ("menu", "targets"),
    [
        pytest.param(SHOP, {"support"}, id="flow-prefix"),
        pytest.param(
            {
                "steps": {
                    "initial": {
                        "next_steps": {"a": "order_flow", "b": "support_flow", "c": "x_flow"}
                    },
                    "x_flow": {},
                }
            },
            {"order", "support"},
            id="guide-suffix-but-not-own-steps",
        ),
        pytest.param(
            {"steps": {"initial": {"next_step": "flow:main_menu"}}}, {"main_menu"}, id="next-step"
        ),
        pytest.param({"steps": []}, set(), id="garbage-steps"),
        pytest.param([], set(), id="garbage"),
    ],
)
def test_template_targets(menu: Any, targets: set[str]) -> None:
    assert template_targets(menu) == targets


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("main_menu", True),
        ("a1_b", True),
        ("Main", False),
        ("_x", False),
        ("x" * 65, False),
        ("x\n", False),
    ],
    ids=["plain", "digits", "uppercase", "underscore-first", "too-long", "newline"],
)
def test_name_pattern(name: str, valid: bool) -> None:
    assert bool(NAME_PATTERN.match(name)) is valid


def _nest(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"steps": [value]}
    return value


@pytest.mark.parametrize(
    "menu",
    [
        pytest.param(None, id="null"),
        pytest.param("menu", id="string"),
        pytest.param(3.5, id="number"),
        pytest.param([SHOP], id="list"),
        pytest.param(_nest(5000), id="deeply-nested"),
        pytest.param(
            {
                "type": "button",
                "action": {"buttons": [None, 1, [], {"reply": []}]},
                "steps": {"initial": None},
            },
            id="garbage-buttons",
        ),
        pytest.param(
            {"type": "list", "action": {"sections": [{"rows": [{"id": ["x"], "set": []}]}]}},
            id="garbage-rows",
        ),
        pytest.param(
            {
                "type": "text",
                "body": {"text": "x" * 1_000_000},
                "expiry_hours": float("nan"),
                "steps": {
                    "initial": {
                        "next_steps": {"a": ["b"]},
                        "validation": {"type": "integer", "min": 10**400},
                    }
                },
            },
            id="huge-values",
        ),
        pytest.param(
            {
                "type": "text",
                "body": {"text": "Hi"},
                "steps": {
                    "initial": {"next_step": "s0"},
                    **{f"s{i}": {"prompt": "x", "next_step": f"s{i + 1}"} for i in range(20000)},
                    "s20000": {"prompt": "x", "end_conversation": True},
                },
            },
            id="long-chain",
        ),
        pytest.param(
            {
                "type": "text",
                "body": {"text": "Hi"},
                "steps": {
                    "initial": {
                        "compute": {"x": "(" * 10000},
                        "validation": {"type": "regex", "pattern": "(" * 500 + ")" * 500},
                        "next_step": "initial",
                    }
                },
            },
            id="deep-expressions",
        ),
    ],
)
def test_any_json_gets_a_verdict(menu: Any) -> None:
    found = validate_template("shop", ["shop"], menu, known_templates=KNOWN)
    assert all(isinstance(v, Violation) for v in found)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=30,
)
KEYS = st.sampled_from(
    [
        "type",
        "body",
        "text",
        "action",
        "buttons",
        "reply",
        "id",
        "title",
        "sections",
        "rows",
        "steps",
        "initial",
        "next_step",
        "next_steps",
        "validation",
        "set",
        "compute",
        "prompt",
        "end_conversation",
        "context_key",
        "header",
        "footer",
        "min",
        "max",
        "pattern",
        "lookup",
    ]
)
SHAPED = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=10)
    | st.sampled_from(["button", "list", "text", "reply", "initial", "flow:shop", "x_flow", "{x}"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=6),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(name=JSON, keywords=JSON, menu=JSON | SHAPED)
def test_arbitrary_json_never_raises(name: Any, keywords: Any, menu: Any) -> None:
    found = validate_template(name, keywords, menu, known_templates=KNOWN)
    assert all(isinstance(v, Violation) for v in found)
    template_targets(menu)


@settings(max_examples=300, deadline=None)
@given(
    edits=st.dictionaries(
        st.sampled_from(
            [
                "type",
                "body",
                "action",
                "steps",
                "header",
                "footer",
                "steps.initial",
                "steps.quantity",
                "steps.confirm.action",
                "action.sections[0]",
                "steps.quantity.validation",
            ]
        ),
        SHAPED,
        max_size=3,
    )
)
def test_damaged_templates_never_raise(edits: dict[str, Any]) -> None:
    menu = copy.deepcopy(SHOP)
    for path, value in edits.items():
        try:
            menu = changed({path: value}, menu)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit removed this path's parent
    found = validate_template("shop", ["shop"], menu, known_templates=KNOWN)
    assert all(isinstance(v, Violation) for v in found)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Table for {party_size:money2}",
            "'{party_size:money2}' uses unknown format 'money2', so it would be sent as it is: "
            "the formats are lower, money, upper (did you mean 'money'?)",
            id="unknown-format-with-a-digit",
        ),
        pytest.param(
            "Table for {party_size",
            "'{party_size' opens a placeholder that is never closed, so it would be sent as it "
            "is: write '{party_size}'",
            id="unclosed-at-the-end",
        ),
        pytest.param(
            "Table for {party_size:money and more",
            "'{party_size:money' opens a placeholder that is never closed",
            id="unclosed-with-format",
        ),
        pytest.param(
            "{ total } and {total",
            "'{total' opens a placeholder that is never closed",
            id="unclosed-beside-a-near-miss",
        ),
    ],
)
def test_placeholder_mistakes_are_named_for_what_they_are(text: str, expected: str) -> None:
    menu = copy.deepcopy(SHOP)
    menu["steps"]["confirm"]["prompt"] = text

    found = [d for f, d in problems(menu) if f == "menu_structure.steps.confirm.prompt"]

    assert any(expected in description for description in found), found
    assert not any("without spaces" in d for d in found if "{ total }" not in d)


def test_a_closed_placeholder_is_not_called_unclosed() -> None:
    menu = copy.deepcopy(SHOP)
    menu["steps"]["confirm"]["prompt"] = "{quantity} x {product_title}: {total:money}. OK?"

    assert problems(menu) == []


def test_a_missing_step_is_reported_once_not_as_unreachable_steps_behind_it() -> None:
    menu = copy.deepcopy(SHOP)
    del menu["steps"]["quantity"]

    found = problems(menu)

    assert (
        "menu_structure.steps.initial.next_step",
        "target 'quantity' names no step of this template and no template",
    ) in found
    assert not [d for _, d in found if "unreachable" in d]


def test_a_typo_is_never_answered_with_the_template_itself() -> None:
    menu = copy.deepcopy(SHOP)
    menu["steps"]["initial"]["next_steps"]["support"] = "shpo"
    menu["steps"]["confirm"]["next_steps"]["yes"] = "flow:shpo"

    found = dict(problems(menu, name="shop"))

    assert "did you mean" not in found["menu_structure.steps.initial.next_steps.support"]
    assert "did you mean" not in found["menu_structure.steps.confirm.next_steps.yes"]


WARNED = [
    pytest.param(
        {"steps.initial.prompt": "What would you like?"},
        ("menu_structure.steps.initial.prompt", "is never sent"),
        id="initial-prompt",
    ),
    pytest.param(
        {"steps.confirm.prompt": "You said {user_input}. Place the order?"},
        ("menu_structure.steps.confirm.prompt", "placeholder {user_input} is always empty"),
        id="guide-user-input",
    ),
    pytest.param(
        {
            "steps.quantity.context_key": DELETE,
            "steps.quantity.compute": DELETE,
            "steps.confirm.prompt": "Place the order?",
        },
        ("menu_structure.steps.quantity.validation", "the answer is dropped once checked"),
        id="validation-without-context-key",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), WARNED)
def test_legal_but_probably_wrong_is_a_warning_not_a_problem(
    edits: dict[str, object], expected: tuple[str, str]
) -> None:
    menu = changed(edits)

    found = review_template("shop", ["coffee"], menu, known_templates=KNOWN)

    assert validate_template("shop", ["coffee"], menu, known_templates=KNOWN) == []
    assert [(v.field, v.warning) for v in found] == [(expected[0], True)]
    assert expected[1] in found[0].description


def test_a_valid_template_without_surprises_has_no_warnings() -> None:
    assert review_template("shop", ["coffee"], SHOP, known_templates=KNOWN) == []


PERSON = {"prompt": "A person will answer you shortly.", "handoff": {"queue": "support"}}
HANDOFF_CASES = [
    pytest.param(
        {
            "steps.confirm.next_steps.no": "person",
            "steps.cancelled": DELETE,
            "steps.person": PERSON,
        },
        [],
        id="valid",
    ),
    pytest.param(
        {
            "steps.confirm.next_steps.no": "person",
            "steps.cancelled": DELETE,
            "steps.person": {**PERSON, "handoff": {"priority": 12, "queu": "x", "queue": 3}},
        },
        [
            ("menu_structure.steps.person.handoff.queu", "unknown key 'queu'"),
            ("menu_structure.steps.person.handoff.queue", "at most 64"),
            ("menu_structure.steps.person.handoff.priority", "0-9"),
        ],
        id="bad-fields",
    ),
    pytest.param(
        {
            "steps.confirm.next_steps.no": "person",
            "steps.cancelled": DELETE,
            "steps.person": {**PERSON, "end_conversation": True},
        },
        [("menu_structure.steps.person.handoff", "cannot end the conversation")],
        id="handoff-that-ends",
    ),
    pytest.param(
        {
            "steps.confirm.next_steps.no": "person",
            "steps.cancelled": DELETE,
            "steps.person": {"handoff": "support"},
        },
        [
            ("menu_structure.steps.person", "sends nothing when entered"),
            ("menu_structure.steps.person.handoff", "must be an object"),
        ],
        id="not-an-object-and-silent",
    ),
    pytest.param(
        {
            "steps.confirm.next_steps.no": "person",
            "steps.cancelled": DELETE,
            "steps.person": {**PERSON, "handoff": {"resume_message": "{nope}"}},
        },
        [("menu_structure.steps.person.handoff.resume_message", "placeholder {nope}")],
        id="resume-message-placeholder",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), HANDOFF_CASES)
def test_handoff_steps(edits: dict[str, object], expected: list[tuple[str, str]]) -> None:
    """A step that hands the customer to people needs no next_step; its fields are checked."""
    found = problems(changed(edits))
    assert [field for field, _ in found] == [field for field, _ in expected], found
    for (_, description), (_, fragment) in zip(found, expected, strict=True):
        assert fragment in description
