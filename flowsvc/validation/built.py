"""Checks on a menu built from data (`rows_from` in a list's action, `buttons_from` in a button
message's action; the engine's built.py): the list it reads must be set before the message is
sent, the item texts must be placeholders the engine can fill, and the step must say where a
choice goes and where an empty list goes."""

from collections.abc import Collection, Mapping
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.render import placeholder_names
from flowsvc.validation.context import KEY_PATTERN, check_key, placeholders
from flowsvc.validation.targets import check_target
from flowsvc.validation.violation import Violation, check_keys, clip, kind, suggest

BUILT_KEYS = ("items", "title", "description", "store_as", "empty", "section", "fields")
BUTTONS_FROM_KEYS = (*BUILT_KEYS, "list_button")
EXAMPLE = (
    '{"items": "slots", "title": "{label}", "description": "{time}", "store_as": "slot", '
    '"empty": "no_slots"}'
)


def built_spec(holder: Mapping[Any, Any]) -> tuple[str, Any] | None:
    """("rows_from" or "buttons_from", its value) when the message is built from data."""
    action = holder.get("action")
    if not isinstance(action, Mapping):
        return None
    key = "rows_from" if holder.get("type") == "list" else "buttons_from"
    if holder.get("type") in ("list", "button") and key in action:
        return key, action[key]
    return None


def stored_names(holder: Mapping[Any, Any]) -> set[str]:
    """The context keys a choice of a built menu sets: `store_as`, and `<store_as>_<field>` for
    each field its texts read or `fields` names (tolerating any shape: a pre-pass)."""
    found = built_spec(holder)
    if found is None or not isinstance(found[1], Mapping):
        return set()
    spec = found[1]
    store_as = spec.get("store_as")
    if not isinstance(store_as, str):
        return set()
    fields = {f for f in spec.get("fields") or () if isinstance(f, str)}
    for key in ("title", "description"):
        text = spec.get(key)
        if isinstance(text, str):
            fields |= placeholder_names(text)
    return {store_as, *(f"{store_as}_{field}" for field in fields)}


def check_built(
    holder: Mapping[Any, Any],
    path: str,
    step: Mapping[Any, Any],
    step_path: str,
    *,
    steps: Mapping[Any, Any],
    known: Collection[str],
    before: Collection[str],
    later: Collection[str],
    out: list[Violation],
    own: str,
) -> None:
    """`holder` is the message (a step, or menu_structure for 'initial'), `step` the step that
    answers it; `before` the keys set before the message is sent, `later` any the template
    sets."""
    found = built_spec(holder)
    if found is None:
        return
    key, spec = found
    spec_path = f"{path}.action.{key}"
    if not isinstance(spec, Mapping):
        out.append(Violation(spec_path, f"must be an object like {EXAMPLE}, not {kind(spec)}"))
        return
    check_keys(spec, BUTTONS_FROM_KEYS if key == "buttons_from" else BUILT_KEYS, spec_path, out)
    for required in ("items", "title", "store_as", "empty"):
        if required not in spec:
            out.append(Violation(f"{spec_path}.{required}", f"is missing: see {EXAMPLE}"))
    items = spec.get("items")
    if "items" in spec:
        _check_items(items, f"{spec_path}.items", before, later, out)
    for text_key in ("title", "description"):
        if text_key in spec:
            _check_item_text(spec[text_key], f"{spec_path}.{text_key}", out)
    if "store_as" in spec:
        check_key(spec["store_as"], f"{spec_path}.store_as", out, what="store_as")
    if "empty" in spec:
        check_target(spec["empty"], f"{spec_path}.empty", steps, known, out, own=own)
    for label_key, limit in (("section", limits.MAX_SECTION_TITLE), ("list_button", 20)):
        label = spec.get(label_key)
        if label_key in spec and not (isinstance(label, str) and 0 < len(label.strip())):
            out.append(Violation(f"{spec_path}.{label_key}", "must be a non-empty string"))
        elif isinstance(label, str) and len(label) > limit:
            out.append(
                Violation(
                    f"{spec_path}.{label_key}",
                    f"is {len(label)} characters long; WhatsApp allows at most {limit}",
                )
            )
    if "fields" in spec:
        fields = spec["fields"]
        if not isinstance(fields, list) or not all(
            isinstance(f, str) and KEY_PATTERN.match(f) for f in fields
        ):
            out.append(
                Violation(f"{spec_path}.fields", 'must be a list of field names like ["price"]')
            )
    if step.get("end_conversation") is True:
        out.append(
            Violation(
                spec_path,
                "is never answered: this step ends the conversation, so a menu built here "
                "could never be chosen from",
            )
        )
    elif "next_step" not in step:
        out.append(
            Violation(
                f"{step_path}.next_step",
                f"is missing: a choice from the menu built by {key} goes to next_step (or to "
                "the first of the step's rules that holds)",
            )
        )


def _check_items(
    items: object,
    path: str,
    before: Collection[str],
    later: Collection[str],
    out: list[Violation],
) -> None:
    if not isinstance(items, str):
        out.append(Violation(path, f"must name a context key holding a list, not {kind(items)}"))
        return
    if not KEY_PATTERN.match(items):
        out.append(
            Violation(
                path,
                f"'{clip(items)}' is not a context key: use lowercase letters, digits and "
                "underscores, starting with a letter or underscore (at most 64)",
            )
        )
        return
    if items in before:
        return
    if items in later:
        reason = (
            f"reads '{clip(items)}', which only steps after this one set: no step before it "
            "can have stored it"
        )
    else:
        reason = (
            f"reads '{clip(items)}', which no step before this one can set (no context_key, "
            f"set or compute key '{clip(items)}', and it is not in context_keys, where keys "
            "that StartConversation or UpdateConversation put in the context are named)"
        )
    out.append(Violation(path, reason + suggest(items, before)))


def _check_item_text(value: object, path: str, out: list[Violation]) -> None:
    """A title or description is filled from each item's fields (then the context), which are
    not known before the data arrives: only the placeholders' form is checked."""
    if not isinstance(value, str) or not value.strip():
        out.append(Violation(path, f"must be a non-empty text like '{{label}}', not {kind(value)}"))
        return
    _, problems = placeholders(value)
    out.extend(Violation(path, problem) for problem in problems)
