"""The pure parts of authoring: the order steps are met in, diffs and previews, on the shipped
templates (no server)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from flowsvc.engine import Template, load_template
from flowsvc.engine.diff import ChangeKind, diff_versions
from flowsvc.engine.preview import preview

DEFAULTS = Path(__file__).parents[1] / "flowsvc" / "default_templates"


def shipped(name: str, *, shuffle: int | None = None) -> Template:
    data = json.loads((DEFAULTS / f"{name}.json").read_text())
    menu: dict[str, Any] = data["menu_structure"]
    if shuffle is not None:  # JSON objects (and protobuf Structs) promise no key order
        steps = list(menu["steps"].items())
        random.Random(shuffle).shuffle(steps)
        menu = {**menu, "steps": dict(steps)}
    return load_template(name, 1, menu, trigger_keywords=data["trigger_keywords"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steps_come_in_the_order_a_customer_meets_them_however_the_keys_are_ordered(
    seed: int,
) -> None:
    assert shipped("new_order", shuffle=seed).step_order() == [
        "initial",
        "quantity",
        "fulfilment",
        "confirmation",
        "address",
        "complete",
        "cancelled",
        "check_address",
        "delivery_confirmation",
        "address_failed",
    ]


def test_a_version_compared_with_itself_has_no_changes() -> None:
    assert diff_versions(shipped("support"), shipped("support", shuffle=7)) == []


def test_a_removed_button_is_an_option_and_a_target_change() -> None:
    data = json.loads((DEFAULTS / "main_menu.json").read_text())
    menu = data["menu_structure"]
    menu["action"]["buttons"].pop()
    del menu["steps"]["initial"]["next_steps"]["account"]
    newer = load_template("main_menu", 2, menu, trigger_keywords=data["trigger_keywords"])

    changes = [(c.kind, c.field, c.old, c.new) for c in diff_versions(shipped("main_menu"), newer)]

    assert changes == [
        (ChangeKind.OPTION_REMOVED, "options.account", "👤 My Account", ""),
        (ChangeKind.TARGET_CHANGED, "next_steps.account", "flow:account", ""),
    ]


def test_the_preview_fills_the_sample_context_and_names_what_it_lacks() -> None:
    steps = {s.step: s for s in preview(shipped("new_order"), {"product_title": "Tea"})}

    assert steps["quantity"].messages[0]["text"]["body"].startswith("How many Tea would you")
    assert steps["confirmation"].missing_placeholders == ("quantity", "total")
    assert [(c.id, c.target) for c in steps["confirmation"].choices] == [
        ("yes", "complete"),
        ("no", "cancelled"),
    ]
    assert steps["complete"].end_conversation
