"""The pure parts of authoring: the order steps are met in, diffs and previews, on the shipped
templates (no server)."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from flowsvc.engine import Template, load_template
from flowsvc.engine.diff import ChangeKind, diff_versions
from flowsvc.engine.preview import preview
from flowsvc.validation import validate_template

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


# -- media, CTA URL, location requests and WhatsApp Flows in the diff and the preview ----------


def version(number: int, menu: dict[str, Any]) -> Template:
    return load_template("shapes", number, menu)


def shapes() -> dict[str, Any]:
    """A template of every message shape beside buttons and lists, built from the tests that
    send them."""
    from tests.test_location_cta import DELIVERY
    from tests.test_media import DISHES
    from tests.test_whatsapp_flows import BOOKING

    menu = copy.deepcopy(DISHES)
    steps = menu["steps"]
    steps["initial"]["next_steps"]["clip"] = "party"  # the third button starts a booking
    del steps["clip"]
    steps["party"] = {
        "prompt": "For how many?",
        "validation": {"type": "integer", "min": 1, "max": 12},
        "context_key": "party",
        "next_step": "form",
    }
    steps["form"] = copy.deepcopy(BOOKING["steps"]["form"])
    steps["form"].pop("rules")
    steps["form"]["next_step"] = "where"
    for name in ("where", "note", "pay"):
        steps[name] = copy.deepcopy(DELIVERY["steps"][name])
    return menu


def test_the_shapes_template_is_valid() -> None:
    found = validate_template("shapes", ["shapes"], shapes(), known_templates=())
    assert [(v.field, v.description) for v in found if not v.warning] == []


def test_media_cta_and_flow_changes_are_named_in_the_diff() -> None:
    before = shapes()
    after = copy.deepcopy(before)
    after["header"]["image"]["link"] = "https://cdn.example.com/menu-winter.jpg"
    after["steps"]["photo"]["image"]["caption"] = "Our {dish}, fresh today"
    after["steps"]["invoice"]["document"]["filename"] = "invoice-2026.pdf"
    pay = after["steps"]["pay"]["action"]["parameters"]
    pay["url"], pay["display_text"] = "https://pay.example.com/v2/{note}", "Pay here"
    flow = after["steps"]["form"]["action"]["parameters"]
    flow["flow_id"], flow["flow_cta"] = "9876543210", "Pick a time"
    flow["flow_action_payload"]["screen"] = "TIMES"

    changes = [
        (c.kind, c.step, c.field, c.old, c.new)
        for c in diff_versions(version(1, before), version(2, after))
    ]

    text, setting = ChangeKind.TEXT_CHANGED, ChangeKind.SETTING_CHANGED
    photo = "https://cdn.example.com/menu.jpg"
    assert changes == [
        (setting, "initial", "message.header_media.link", photo, photo[:-4] + "-winter.jpg"),
        (text, "photo", "message.media.caption", "Our {dish} today", "Our {dish}, fresh today"),
        (setting, "invoice", "message.media.filename", "invoice.pdf", "invoice-2026.pdf"),
        (text, "form", "message.flow.cta", "Choose a time", "Pick a time"),
        (setting, "form", "message.flow.flow_id", "1234567890", "9876543210"),
        (setting, "form", "message.flow.screen", "BOOKING", "TIMES"),
        (text, "pay", "message.cta_text", "Pay now", "Pay here"),
        (
            setting,
            "pay",
            "message.cta_url",
            "https://pay.example.com/checkout/{note}?who={contact_name}",
            "https://pay.example.com/v2/{note}",
        ),
    ]


def test_a_translated_caption_and_an_own_text_show_in_the_diff_by_language() -> None:
    before = shapes()
    before["language"] = "en"
    before["translations"] = {"es": {"steps.photo.image.caption": "Nuestro {dish} de hoy"}}
    after = copy.deepcopy(before)
    after["translations"]["es"]["steps.photo.image.caption"] = "Nuestra {dish} de hoy"
    after["texts"] = {"es": {"more": "Ver más ▸"}}

    changes = [
        (c.step, c.field, c.old, c.new)
        for c in diff_versions(version(1, before), version(2, after))
    ]

    assert changes == [
        (
            "photo",
            "translations.es.message.media.caption",
            "Nuestro {dish} de hoy",
            "Nuestra {dish} de hoy",
        ),
        ("", "texts.es.more", "", "Ver más ▸"),
    ]


def test_the_preview_shows_media_cta_location_and_flow_messages_and_their_placeholders() -> None:
    steps = {s.step: s for s in preview(version(1, shapes()), {"note": "gate 2"})}

    header = steps["initial"].messages[0]["interactive"]["header"]
    assert header == {"type": "image", "image": {"link": "https://cdn.example.com/menu.jpg"}}
    photo = steps["photo"].messages[-1]
    assert photo["image"] == {"link": "https://cdn.example.com/pasta.jpg", "caption": "Our  today"}
    assert steps["photo"].missing_placeholders == ("dish",)  # named from the caption
    assert steps["invoice"].messages[0]["document"]["filename"] == "invoice.pdf"
    assert steps["where"].messages[0]["interactive"]["action"] == {"name": "send_location"}
    assert steps["where"].input == "location"
    url = steps["pay"].messages[0]["interactive"]["action"]["parameters"]["url"]
    assert url == "https://pay.example.com/checkout/gate%202?who=Customer"
    form = steps["form"]
    assert form.messages[0]["interactive"]["action"]["parameters"]["flow_id"] == "1234567890"
    assert form.input == "flow"
    assert form.missing_placeholders == ("party",)  # in the body and the Flow's data


def test_the_preview_speaks_the_language_the_sample_context_names() -> None:
    menu = shapes()
    menu["language"] = "en"
    menu["translations"] = {"es": {"steps.photo.image.caption": "Nuestro {dish} de hoy"}}
    steps = {s.step: s for s in preview(version(1, menu), {"dish": "pasta", "language": "es"})}

    assert steps["photo"].messages[-1]["image"]["caption"] == "Nuestro pasta de hoy"
