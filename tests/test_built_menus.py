"""Menus built from data (`rows_from`, `buttons_from`): the pure engine, validation, preview and
diff. End to end through the gateway: tests/test_built_menus_e2e.py."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from flowsvc.engine import Catalog, Decision, Inbound, Outcome, State, limits, load_template, start
from flowsvc.engine.diff import ChangeKind, diff_versions
from flowsvc.engine.preview import preview
from flowsvc.engine.wording import read_text_sets
from flowsvc.validation import validate_template
from tests.engine_calls import CONFIG, NOW, REF, TO, decide

BOOKING_FILE = Path(__file__).parent / "data" / "booking_slots.json"
BOOKING: dict[str, Any] = json.loads(BOOKING_FILE.read_text(encoding="utf-8"))
MENU: dict[str, Any] = BOOKING["menu_structure"]


def slots(count: int) -> list[dict[str, Any]]:
    return [
        {"label": f"Slot {n}", "time": f"{8 + n // 4:02d}:{n % 4 * 15:02d}"}
        for n in range(1, count + 1)
    ]


DOCTORS = [{"name": "Dr Ada", "speciality": "General"}, {"name": "Dr Bo", "speciality": "Skin"}]


def catalog(menu: dict[str, Any] | None = None) -> Catalog:
    return Catalog.build([load_template("booking_slots", 1, menu or MENU)])


def begin(context: dict[str, Any], menu: dict[str, Any] | None = None) -> Decision:
    decision = start(
        catalog(menu),
        "booking_slots",
        context=context,
        to=TO,
        now=NOW,
        config=CONFIG,
        reference=REF,
    )
    assert isinstance(decision, Decision)
    return decision


def reply(decision: Decision, inbound: Inbound, menu: dict[str, Any] | None = None) -> Decision:
    return decide(decision.state, inbound, catalog=catalog(menu))


def tap(decision: Decision, row: dict[str, Any], menu: dict[str, Any] | None = None) -> Decision:
    return reply(decision, Inbound(selection_id=row["id"], selection_title=row["title"]), menu)


def rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for section in body["interactive"]["action"]["sections"] for row in section["rows"]]


def item_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in rows(body) if row["title"] not in ("More ▸", "◂ Previous")]


def nav(body: dict[str, Any], title: str) -> dict[str, Any]:
    [found] = [row for row in rows(body) if row["title"] == title]
    return found


def text(body: dict[str, Any]) -> str:
    return str(
        body["text"]["body"] if body["type"] == "text" else body["interactive"]["body"]["text"]
    )


# -- pages -------------------------------------------------------------------------------------


def test_37_slots_become_pages_of_at_most_ten_rows_with_more_and_previous() -> None:
    decision = begin({"slots": slots(37)})
    pages = [decision.messages[-1]]
    while any(row["title"] == "More ▸" for row in rows(pages[-1])):
        decision = tap(decision, nav(pages[-1], "More ▸"))
        assert decision.outcome is Outcome.ADVANCED
        [page] = decision.messages  # only the list again, not the prompt
        pages.append(page)

    assert [len(rows(page)) for page in pages] == [10, 10, 10, 10, 5]
    assert all(len(rows(page)) <= limits.MAX_ROWS for page in pages)
    shown = [row["title"] for page in pages for row in item_rows(page)]
    assert shown == [f"Slot {n}" for n in range(1, 38)]  # every slot once, in order
    assert [len(item_rows(page)) for page in pages] == [9, 8, 8, 8, 4]
    first, last = pages[0], pages[-1]
    assert rows(first)[-1]["title"] == "More ▸"
    assert all(row["title"] != "◂ Previous" for row in rows(first))
    assert rows(last)[0]["title"] == "◂ Previous"  # a way back, and no More on the last page
    assert [row["title"] for row in item_rows(last)] == ["Slot 34", "Slot 35", "Slot 36", "Slot 37"]
    assert first["interactive"]["action"]["button"] == "Free times"
    assert first["interactive"]["header"] == {"type": "text", "text": "Book a visit"}

    back = tap(decision, nav(last, "◂ Previous"))
    assert [row["title"] for row in item_rows(back.messages[0])][0] == "Slot 26"


def test_ten_slots_fit_in_one_list_without_more() -> None:
    [body] = begin({"slots": slots(10)}).messages
    assert len(rows(body)) == 10
    assert all(row["title"].startswith("Slot") for row in rows(body))


def test_long_titles_and_descriptions_are_cut_with_an_ellipsis_counted_in_code_points() -> None:
    long_label = "🦷 Tooth check with the senior hygienist"
    long_time = "Tuesday 14:00, room 3, second floor, " + "please arrive ten minutes early " * 2
    [body] = begin({"slots": [{"label": long_label, "time": long_time}]}).messages

    [row] = rows(body)
    assert len(row["title"]) == limits.MAX_ROW_TITLE and row["title"].endswith("…")
    assert row["title"] == long_label[:23] + "…"
    assert len(row["description"]) == limits.MAX_ROW_DESCRIPTION
    assert row["description"].endswith("…")
    assert len(row["id"]) <= limits.MAX_ROW_ID


# -- choosing ----------------------------------------------------------------------------------


def test_a_tap_stores_the_item_and_its_fields_then_moves_on() -> None:
    decision = begin({"slots": slots(3), "doctors": DOCTORS})
    second = item_rows(decision.messages[0])[1]

    moved = tap(decision, second)

    assert moved.outcome is Outcome.ADVANCED
    assert moved.state is not None and moved.state.step == "doctor"
    context = moved.state.context
    assert context["slot"] == {"label": "Slot 2", "time": "08:30"}
    assert (context["slot_label"], context["slot_time"]) == ("Slot 2", "08:30")
    [buttons] = moved.messages
    assert text(buttons) == "Slot 2 at 08:30: who would you like to see?"
    assert buttons["interactive"]["type"] == "button"
    titles = [b["reply"]["title"] for b in buttons["interactive"]["action"]["buttons"]]
    assert titles == ["Dr Ada", "Dr Bo"]

    ada = buttons["interactive"]["action"]["buttons"][0]["reply"]
    done = tap(moved, ada)
    assert done.outcome is Outcome.COMPLETED
    assert (
        text(done.messages[0]) == f"Booked: Slot 2 at 08:30 with Dr Ada. Your reference is {REF}."
    )
    assert done.result is not None and done.result.context["doctor_speciality"] == "General"


def test_typing_a_title_or_a_number_chooses_like_a_tap() -> None:
    decision = begin({"slots": slots(37), "doctors": DOCTORS})

    by_title = reply(decision, Inbound(text="slot 30"))
    by_number = reply(decision, Inbound(text="12"))

    assert by_title.state is not None and by_title.state.context["slot_label"] == "Slot 30"
    assert by_number.state is not None and by_number.state.context["slot_label"] == "Slot 12"
    nonsense = reply(decision, Inbound(text="tomorrow maybe"))
    assert nonsense.outcome is Outcome.INVALID_INPUT
    assert nonsense.state is not None and nonsense.state.step == "initial"
    assert text(nonsense.messages[-1]) == "Which time suits you?"  # asked again


def test_a_tap_on_an_older_page_still_chooses_its_slot() -> None:
    decision = begin({"slots": slots(37), "doctors": DOCTORS})
    on_first_page = item_rows(decision.messages[0])[4]
    later = tap(decision, nav(decision.messages[0], "More ▸"))
    later = tap(later, nav(later.messages[0], "More ▸"))

    chosen = tap(later, on_first_page)

    assert chosen.state is not None and chosen.state.context["slot_label"] == "Slot 5"


def test_a_tap_on_a_slot_that_left_the_list_is_told_so_and_shown_the_list_again() -> None:
    decision = begin({"slots": slots(12), "doctors": DOCTORS})
    gone = item_rows(decision.messages[0])[0]
    assert decision.state is not None
    # Another service replaced the slots since the list was sent (UpdateConversation).
    changed = State(
        **{**decision.state.__dict__, "context": {**decision.state.context, "slots": slots(12)[1:]}}
    )

    answer = decide(
        changed, Inbound(selection_id=gone["id"], selection_title=gone["title"]), catalog=catalog()
    )

    assert answer.outcome is Outcome.STALE_SELECTION
    assert text(answer.messages[0]) == "That option is not available right now."
    assert item_rows(answer.messages[1])[0]["title"] == "Slot 2"
    assert answer.state is not None and answer.state.step == "initial"

    moved = State(**{**changed.__dict__, "context": {**changed.context, "slots": slots(12)[::-1]}})
    still = decide(moved, Inbound(selection_id=gone["id"]), catalog=catalog())
    assert still.state is not None and still.state.context["slot_label"] == "Slot 1"  # moved, found


def test_an_empty_or_missing_list_takes_the_empty_target() -> None:
    contexts: list[dict[str, Any]] = [{"slots": []}, {}, {"slots": "not a list"}]
    for context in contexts:
        decision = begin(context)
        assert decision.outcome is Outcome.COMPLETED
        assert [text(m) for m in decision.messages] == [
            "Sorry, there are no free times left this week."
        ]
        assert decision.result is None


def test_more_than_three_buttons_become_a_list_and_so_do_titles_that_would_repeat() -> None:
    decision = begin({"slots": slots(2), "doctors": [{"name": f"Dr {n}"} for n in "ABCD"]})
    [body] = tap(decision, item_rows(decision.messages[0])[0]).messages
    assert body["interactive"]["type"] == "list"
    assert body["interactive"]["action"]["button"] == "Doctors"
    assert [row["title"] for row in rows(body)] == ["Dr A", "Dr B", "Dr C", "Dr D"]

    same = [{"name": "Dr Alexandra Papadopoulos-" + s} for s in ("Smith", "Jones")]
    decision = begin({"slots": slots(2), "doctors": same})
    [body] = tap(decision, item_rows(decision.messages[0])[0]).messages
    assert body["interactive"]["type"] == "list"  # cut to 20, both would read the same

    decision = begin({"slots": slots(2), "doctors": [{"name": "Dr Alexandra Papadopoulos"}]})
    [body] = tap(decision, item_rows(decision.messages[0])[0]).messages
    [button] = body["interactive"]["action"]["buttons"]
    assert button["reply"]["title"] == "Dr Alexandra Papado…"
    assert len(button["reply"]["title"]) == limits.MAX_BUTTON_TITLE


def test_an_empty_button_list_goes_to_its_empty_target() -> None:
    decision = begin({"slots": slots(2), "doctors": []})
    done = tap(decision, item_rows(decision.messages[0])[0])
    assert done.outcome is Outcome.COMPLETED
    assert (
        text(done.messages[0])
        == f"Booked: Slot 1 at 08:15 with the first doctor free. Your reference is {REF}."
    )


# -- validation --------------------------------------------------------------------------------


def problems(menu: dict[str, Any]) -> list[tuple[str, str]]:
    found = validate_template("booking_slots", [], menu, known_templates=())
    return [(v.field, v.description) for v in found]


def test_the_booking_template_is_valid() -> None:
    assert problems(MENU) == []


def test_the_items_key_must_be_set_before_the_menu_is_sent() -> None:
    menu = copy.deepcopy(MENU)
    menu["action"]["rows_from"]["items"] = "slotz"

    [(field, description)] = problems(menu)

    assert field == "menu_structure.action.rows_from.items"
    assert description.startswith("reads 'slotz', which no step before this one can set")
    assert description.endswith("(did you mean 'slots'?)")

    later = copy.deepcopy(MENU)
    later["context_keys"] = ["slots"]  # doctors: nothing sets it before step 'doctor'
    [(field, description)] = problems(later)
    assert field == "menu_structure.steps.doctor.action.buttons_from.items"
    assert "reads 'doctors'" in description


def test_a_key_only_a_later_step_sets_is_named_so() -> None:
    menu = copy.deepcopy(MENU)
    menu["context_keys"] = ["slots"]
    menu["steps"]["booked"]["set"] = {"doctors": None}

    [(field, description)] = problems(menu)

    assert field == "menu_structure.steps.doctor.action.buttons_from.items"
    assert description == (
        "reads 'doctors', which only steps after this one set: no step before it can have stored it"
    )


def test_a_key_set_by_an_earlier_step_may_be_read() -> None:
    menu = copy.deepcopy(MENU)
    menu["context_keys"] = ["slots"]
    menu["steps"]["initial"]["set"] = {"doctors": None}
    assert problems(menu) == []


def test_a_built_menu_needs_its_fields_and_somewhere_to_go() -> None:
    menu = copy.deepcopy(MENU)
    menu["steps"]["doctor"]["action"]["buttons_from"] = {
        "items": "doctors",
        "title": "{ name }",
        "store_as": "Doctor",
    }
    del menu["steps"]["doctor"]["next_step"]
    menu["action"]["sections"] = []

    found = problems(menu)

    assert [field for field, _ in found][:5] == [
        "menu_structure.action.sections",
        "menu_structure.steps.doctor.action.buttons_from.empty",
        "menu_structure.steps.doctor.action.buttons_from.title",
        "menu_structure.steps.doctor.action.buttons_from.store_as",
        "menu_structure.steps.doctor.next_step",
    ]
    assert found[0][1].startswith("unknown key 'sections'")


def test_a_placeholder_reading_a_field_no_text_names_is_unknown_unless_declared() -> None:
    menu = copy.deepcopy(MENU)
    menu["steps"]["booked"]["prompt"] = "Booked with {doctor_room}. {order_id}"
    [(field, _)] = problems(menu)
    assert field == "menu_structure.steps.booked.prompt"
    menu["steps"]["doctor"]["action"]["buttons_from"]["fields"] = ["room"]
    assert problems(menu) == []


# -- preview and diff ----------------------------------------------------------------------------


def test_preview_shows_a_sample_row_naming_the_fields_or_the_contexts_items() -> None:
    template = load_template("booking_slots", 1, MENU)

    [first, *_] = preview(template, {})

    [row] = rows(first.messages[0])
    assert (row["title"], row["description"]) == ("(label)", "(time)")
    assert [choice.target for choice in first.choices] == ["doctor"]
    [first, *_] = preview(template, {"slots": slots(12)})
    assert len(rows(first.messages[0])) == 10
    assert [c.target for c in first.choices][-1] == "initial"  # More stays in the step
    assert [step.step for step in preview(template, {})] == [
        "initial",
        "doctor",
        "no_slots",
        "booked",
        "booked_any",
    ]


def test_a_changed_rows_from_shows_in_the_diff() -> None:
    changed = copy.deepcopy(MENU)
    changed["action"]["rows_from"]["title"] = "{label} ({time})"

    [change] = diff_versions(load_template("b", 1, MENU), load_template("b", 2, changed))

    assert (change.kind, change.step, change.field) == (
        ChangeKind.SETTING_CHANGED,
        "initial",
        "message.rows_from",
    )
    assert '"title": "{label} ({time})"' in change.new


def test_rules_of_the_step_read_the_chosen_items_fields() -> None:
    menu = copy.deepcopy(MENU)
    menu["steps"]["initial"]["rules"] = [{"when": "slot_time == '08:15'", "go": "booked_any"}]
    assert problems(menu) == []
    decision = begin({"slots": slots(3), "doctors": DOCTORS}, menu)

    early = tap(decision, item_rows(decision.messages[0])[0], menu)
    later = tap(decision, item_rows(decision.messages[0])[1], menu)

    assert text(early.messages[0]).startswith("Booked: Slot 1 at 08:15 with the first doctor free")
    assert later.state is not None and later.state.step == "doctor"


def test_a_translated_title_is_used_in_the_customers_language() -> None:
    menu = copy.deepcopy(MENU)
    menu["translations"] = {"es": {"action.rows_from.title": "{label} (es)"}}
    assert problems(menu) == []

    [body] = begin({"slots": slots(2), "language": "es"}, menu).messages

    assert [row["title"] for row in rows(body)] == ["Slot 1 (es)", "Slot 2 (es)"]


def test_buttons_with_a_media_header_that_become_a_list_drop_it() -> None:
    menu = copy.deepcopy(MENU)
    image = {"link": "https://example.com/doctors.png"}
    menu["steps"]["doctor"]["header"] = {"type": "image", "image": image}
    assert problems(menu) == []
    decision = begin({"slots": slots(2), "doctors": DOCTORS * 2}, menu)

    [body] = tap(decision, item_rows(decision.messages[0])[0], menu).messages

    assert body["interactive"]["type"] == "list"
    assert "header" not in body["interactive"]  # WhatsApp lists take text headers only
    decision = begin({"slots": slots(2), "doctors": DOCTORS}, menu)
    [body] = tap(decision, item_rows(decision.messages[0])[0], menu).messages
    assert body["interactive"]["header"] == {"type": "image", "image": image}


# -- the menu's own words, in the customer's language -------------------------------------------


def sections(body: dict[str, Any]) -> list[str]:
    return [section["title"] for section in body["interactive"]["action"]["sections"]]


def test_a_spanish_customers_pages_read_mas_and_anterior() -> None:
    decision = begin({"slots": slots(25), "language": "es"})
    first = decision.messages[-1]
    assert rows(first)[-1]["title"] == "Más ▸"
    assert sections(first)[-1] == "Más"

    second = tap(decision, nav(first, "Más ▸")).messages[-1]
    assert [row["title"] for row in rows(second)][:2] == ["◂ Anterior", "Slot 10"]
    assert sections(second)[0] == "Atrás" and sections(second)[-1] == "Más"
    assert tap(decision, nav(second, "◂ Anterior")).messages[-1] == first


def test_buttons_that_became_a_list_are_labelled_in_the_customers_language() -> None:
    menu = copy.deepcopy(MENU)
    del menu["steps"]["doctor"]["action"]["buttons_from"]["list_button"]
    doctors = [{"name": f"Dr {n}"} for n in "ABCD"]
    for language, label in (("en", "Choose"), ("es", "Elegir")):
        decision = begin({"slots": slots(2), "doctors": doctors, "language": language}, menu)
        [body] = tap(decision, item_rows(decision.messages[0])[0], menu).messages
        assert body["interactive"]["action"]["button"] == label


def test_a_template_rewords_the_paging_rows_per_language() -> None:
    menu = copy.deepcopy(MENU)
    menu["language"] = "en"
    menu["texts"] = {
        "en": {"more": "Later times", "more_section": "Later"},
        "es": {"previous": "Antes"},
    }
    english = begin({"slots": slots(25)}, menu)
    assert rows(english.messages[-1])[-1]["title"] == "Later times"
    assert sections(english.messages[-1])[-1] == "Later"
    spanish = begin({"slots": slots(25), "language": "es"}, menu)
    second = tap(spanish, nav(spanish.messages[-1], "Más ▸"), menu).messages[-1]
    assert rows(second)[0]["title"] == "Antes"


def test_a_text_set_rewords_the_paging_rows_within_meta_limits() -> None:
    sets = read_text_sets({"fr": {"more": "Plus ▸", "previous": "◂ Avant"}})
    french = replace(CONFIG, text_sets=sets)
    decision = start(
        catalog(),
        "booking_slots",
        context={"slots": slots(25), "language": "fr"},
        to=TO,
        now=NOW,
        config=french,
        reference=REF,
    )
    assert isinstance(decision, Decision)
    assert rows(decision.messages[-1])[-1]["title"] == "Plus ▸"
    assert sets["es"].texts["more"] == "Más ▸"  # the built-in words it does not reword stay

    with pytest.raises(ValueError, match=r"fr\.more: must be a text of 1 to 24 characters"):
        read_text_sets({"fr": {"more": "Voir plus de créneaux disponibles ▸"}})


def test_an_over_long_paging_title_in_a_templates_texts_is_rejected_naming_it() -> None:
    menu = copy.deepcopy(MENU)
    menu["texts"] = {"es": {"more": "Ver más horarios disponibles ▸", "choose": "Elegir"}}
    assert problems(menu) == [("menu_structure.texts.es.more", "is longer than 24")]
