"""The guide's four templates, exactly as printed, and the shipped defaults, through the validator.

The user's original guide (conversation-tables-guide.md, create_initial_templates.py) is copied
verbatim into tests/data/guide_templates.json. Each of its templates is rejected for the reasons
its bugs show when run; the shipped defaults (flowsvc/default_templates) fix them all.
"""

import json
from pathlib import Path
from typing import Any

import pytest

from flowsvc.validation import Violation, review_template, template_targets, validate_template

DATA = Path(__file__).parent / "data" / "guide_templates.json"
DEFAULTS = Path(__file__).parent.parent / "flowsvc" / "default_templates"
GUIDE: dict[str, dict[str, Any]] = {t["name"]: t for t in json.loads(DATA.read_text("utf-8"))}
KNOWN = frozenset(GUIDE)

VERDICTS = {
    "main_menu": [
        Violation(
            "menu_structure.steps.initial.next_steps.new_order",
            "target 'order_flow' names no step of this template and no template "
            "(did you mean 'flow:new_order'?)",
        ),
    ],
    "new_order": [
        Violation(
            "menu_structure.steps.initial.prompt",
            "is never sent: step 'initial' is entered by sending the first message, so put this "
            "text in menu_structure.body",
            warning=True,
        ),
        Violation(
            "menu_structure.steps.initial",
            "every choice of the first message leads to 'quantity' and none is remembered: add "
            "a context_key to store the choice, next_steps to branch on it, or set on the options",
        ),
        Violation(
            "menu_structure.steps.quantity.validation",
            "checks the customer's answer, but the step has no context_key, so the answer is "
            'dropped once checked: add "context_key" to keep it',
            warning=True,
        ),
        Violation(
            "menu_structure.steps.confirmation",
            "step 'confirmation' accepts any reply and ignores it: whatever the customer writes, "
            "even 'no', leads to 'complete'; offer buttons and branch with next_steps, check the "
            "reply with validation, or store it with context_key",
        ),
    ],
    "support": [
        Violation(
            "menu_structure.steps.initial.next_steps.faq",
            "target 'show_faq' names no step of this template and no template",
        ),
        Violation(
            "menu_structure.steps.initial.next_steps.track_order",
            "target 'track_flow' names no step of this template and no template",
        ),
        Violation(
            "menu_structure.steps.initial.next_steps.contact",
            "target 'show_contact' names no step of this template and no template",
        ),
    ],
    "account": [
        Violation(
            "menu_structure.steps",
            "is missing: add steps with an 'initial' step that says where the reply to the first "
            "message leads (the first message offers 'profile', 'orders', 'settings'); without "
            "it the customer is stuck",
        ),
    ],
}


def test_the_guide_has_four_templates() -> None:
    assert sorted(GUIDE) == ["account", "main_menu", "new_order", "support"]


@pytest.mark.parametrize("name", sorted(VERDICTS))
def test_guide_template_verdict(name: str) -> None:
    template = GUIDE[name]
    found = review_template(
        name, template["trigger_keywords"], template["menu_structure"], known_templates=KNOWN
    )
    assert found == VERDICTS[name]


def test_support_flow_and_account_flow_resolve_to_real_templates() -> None:
    """The guide's <name>_flow form is accepted where <name> exists: only order_flow is wrong."""
    assert template_targets(GUIDE["main_menu"]["menu_structure"]) == {
        "order",
        "support",
        "account",
    }


def _defaults() -> list[dict[str, Any]]:
    return [json.loads(path.read_text("utf-8")) for path in sorted(DEFAULTS.glob("*.json"))]


def test_the_defaults_are_the_guides_four_and_booking() -> None:
    assert sorted(t["name"] for t in _defaults()) == sorted([*GUIDE, "booking"])


@pytest.mark.parametrize("name", sorted([*GUIDE, "booking"]))
def test_default_template_is_valid(name: str) -> None:
    templates = {t["name"]: t for t in _defaults()}
    template = templates[name]
    found = validate_template(
        name,
        template["trigger_keywords"],
        template["menu_structure"],
        known_templates=frozenset(templates),
    )
    assert found == []


def test_the_defaults_fix_every_broken_target_of_the_guide() -> None:
    targets = {t["name"]: template_targets(t["menu_structure"]) for t in _defaults()}
    assert set().union(*targets.values()) <= KNOWN
