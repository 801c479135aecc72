"""What changed between two versions of a template: steps added or removed, texts, options,
targets and settings, each named by step and field."""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, is_dataclass, replace
from typing import Any

from flowsvc.engine.template import FlowSpec, Media, Message, Step, Template

MEDIA_TEXTS = ("caption",)
"""A media asset's fields a customer reads (TEXT_CHANGED); its id, link and filename are
SETTING_CHANGED."""
MEDIA_SETTINGS = ("id", "link", "filename")
FLOW_TEXTS = ("cta",)
FLOW_SETTINGS = ("flow_id", "flow_name", "action", "screen", "data", "mode")


class ChangeKind(enum.StrEnum):
    """What kind of change; member NAME maps to proto `CHANGE_KIND_<NAME>`."""

    STEP_ADDED = enum.auto()
    STEP_REMOVED = enum.auto()
    TEXT_CHANGED = enum.auto()
    TARGET_CHANGED = enum.auto()
    OPTION_ADDED = enum.auto()
    OPTION_REMOVED = enum.auto()
    SETTING_CHANGED = enum.auto()


@dataclass(frozen=True)
class Change:
    """One change: in `step` ("" for the template itself), `field` went from `old` to `new`
    (texts as written, other values as JSON; "" for none)."""

    kind: ChangeKind
    step: str
    field: str
    old: str = ""
    new: str = ""


def diff_versions(old: Template, new: Template) -> list[Change]:
    """Every change from `old` to `new`, template settings first, then steps in the order a
    customer meets them in `new` (Template.step_order), then removed steps by name."""
    changes = [
        Change(ChangeKind.SETTING_CHANGED, "", name, _show(before), _show(after))
        for name, before, after in (
            ("trigger_keywords", list(old.trigger_keywords), list(new.trigger_keywords)),
            ("is_active", old.is_active, new.is_active),
            ("currency", old.currency, new.currency),
            ("expiry_hours", old.expiry_hours, new.expiry_hours),
        )
        if before != after
    ]
    for name in new.step_order():
        if not old.has_step(name):
            changes.append(Change(ChangeKind.STEP_ADDED, name, ""))
        else:
            changes += _step_changes(name, old, new)
    changes += [
        Change(ChangeKind.STEP_REMOVED, name, "")
        for name in sorted(old.steps)
        if not new.has_step(name)
    ]
    return changes + _language_changes(old, new, changes)


def _language_changes(old: Template, new: Template, seen: list[Change]) -> list[Change]:
    """What changed in the other languages: the texts a customer speaking one reads (field
    `translations.<language>.<field>`, only where it differs from the change in the template's
    own language) and menuflow's own texts as the template words them (`texts.<language>.<key>`)."""
    changes: list[Change] = []
    if old.language != new.language:
        changes.append(
            Change(ChangeKind.SETTING_CHANGED, "", "language", old.language, new.language)
        )
    own = {(c.step, c.field, c.old, c.new) for c in seen}
    for language in sorted(set(old.translations) | set(new.translations)):
        before, after = old.speaking(language), new.speaking(language)
        for name in new.step_order():
            if not old.has_step(name):
                continue
            for change in _step_changes(name, before, after):
                mark = (change.step, change.field, change.old, change.new)
                if change.kind is ChangeKind.TEXT_CHANGED and mark not in own:
                    field = f"translations.{language}.{change.field}"
                    changes.append(replace(change, field=field))
    for language in sorted(set(old.texts) | set(new.texts)):
        was, now = old.texts.get(language, {}), new.texts.get(language, {})
        for key in sorted(set(was) | set(now)):
            if was.get(key) != now.get(key):
                field = f"texts.{language}.{key}"
                changes.append(
                    Change(ChangeKind.TEXT_CHANGED, "", field, was.get(key, ""), now.get(key, ""))
                )
    return changes


def _step_changes(name: str, old: Template, new: Template) -> list[Change]:
    before, after = old.step(name), new.step(name)
    changes: list[Change] = []
    for field in ("prompt", "error_message"):
        _compare(changes, ChangeKind.TEXT_CHANGED, name, field, before, after)
    changes += _message_changes(name, old.answering(name), new.answering(name))
    targets_before = {**before.next_steps, "*": before.next_step}
    targets_after = {**after.next_steps, "*": after.next_step}
    for key in sorted(set(targets_before) | set(targets_after), key=lambda k: (k == "*", k)):
        was, now = targets_before.get(key), targets_after.get(key)
        if was != now:
            field = "next_step" if key == "*" else f"next_steps.{key}"
            changes.append(Change(ChangeKind.TARGET_CHANGED, name, field, was or "", now or ""))
    for field in (
        "validation",
        "context_key",
        "set",
        "compute",
        "lookup",
        "end_conversation",
        "save_result",
    ):
        _compare(changes, ChangeKind.SETTING_CHANGED, name, field, before, after)
    return changes


def _message_changes(step: str, old: Message | None, new: Message | None) -> list[Change]:
    if old is None and new is None:
        return []
    empty = Message("text")
    before, after = old or empty, new or empty
    changes: list[Change] = []
    if before.type != after.type:
        changes.append(
            Change(ChangeKind.SETTING_CHANGED, step, "message.type", before.type, after.type)
        )
    for field in ("header", "body", "footer", "list_button"):
        was, now = getattr(before, field), getattr(after, field)
        if was != now:
            changes.append(
                Change(ChangeKind.TEXT_CHANGED, step, f"message.{field}", was or "", now or "")
            )
    changes += _media_changes(step, "message.media", before.media, after.media)
    changes += _media_changes(step, "message.header_media", before.header_media, after.header_media)
    if before.cta_text != after.cta_text:
        changes.append(
            Change(
                ChangeKind.TEXT_CHANGED, step, "message.cta_text", before.cta_text, after.cta_text
            )
        )
    if before.cta_url != after.cta_url:
        changes.append(
            Change(
                ChangeKind.SETTING_CHANGED, step, "message.cta_url", before.cta_url, after.cta_url
            )
        )
    changes += _flow_changes(step, before.flow, after.flow)
    if before.built != after.built:
        was = _show(before.built) if before.built is not None else ""
        now = _show(after.built) if after.built is not None else ""
        field = "message.buttons_from" if after.type == "button" else "message.rows_from"
        changes.append(Change(ChangeKind.SETTING_CHANGED, step, field, was, now))
    old_options = {option.id: option for option in before.options}
    new_options = {option.id: option for option in after.options}
    for option_id, option in new_options.items():
        previous = old_options.get(option_id)
        if previous is None:
            changes.append(
                Change(ChangeKind.OPTION_ADDED, step, f"options.{option_id}", "", option.title)
            )
            continue
        for field in ("title", "description"):
            was, now = getattr(previous, field), getattr(option, field)
            if was != now:
                changes.append(
                    Change(
                        ChangeKind.TEXT_CHANGED,
                        step,
                        f"options.{option_id}.{field}",
                        was or "",
                        now or "",
                    )
                )
        if previous.set != option.set:
            changes.append(
                Change(
                    ChangeKind.SETTING_CHANGED,
                    step,
                    f"options.{option_id}.set",
                    _show(previous.set),
                    _show(option.set),
                )
            )
    changes += [
        Change(ChangeKind.OPTION_REMOVED, step, f"options.{option_id}", option.title, "")
        for option_id, option in old_options.items()
        if option_id not in new_options
    ]
    return changes


def _media_changes(step: str, field: str, old: Media | None, new: Media | None) -> list[Change]:
    """A message's media or media header: its kind, where it comes from, its caption and
    filename, each named `<field>.<name>` ("message.media.link")."""
    if old == new:
        return []
    changes: list[Change] = []
    if (old and old.type) != (new and new.type):
        was, now = (old.type if old else ""), (new.type if new else "")
        changes.append(Change(ChangeKind.SETTING_CHANGED, step, f"{field}.type", was, now))
    for name in (*MEDIA_SETTINGS, *MEDIA_TEXTS):
        was, now = getattr(old, name, None) or "", getattr(new, name, None) or ""
        if was != now:
            kind = ChangeKind.TEXT_CHANGED if name in MEDIA_TEXTS else ChangeKind.SETTING_CHANGED
            changes.append(Change(kind, step, f"{field}.{name}", was, now))
    return changes


def _flow_changes(step: str, old: FlowSpec | None, new: FlowSpec | None) -> list[Change]:
    """A WhatsApp Flow message's fields, each named `message.flow.<name>`; its button's label
    is a text, the rest settings (the first screen's data as JSON)."""
    if old == new:
        return []
    changes: list[Change] = []
    for name in (*FLOW_TEXTS, *FLOW_SETTINGS):
        was, now = getattr(old, name, None), getattr(new, name, None)
        if was != now:
            kind = ChangeKind.TEXT_CHANGED if name in FLOW_TEXTS else ChangeKind.SETTING_CHANGED
            changes.append(Change(kind, step, f"message.flow.{name}", _show(was), _show(now)))
    return changes


def _compare(
    changes: list[Change], kind: ChangeKind, step: str, field: str, before: Step, after: Step
) -> None:
    was, now = getattr(before, field), getattr(after, field)
    if was != now:
        if kind is ChangeKind.TEXT_CHANGED:
            changes.append(Change(kind, step, field, was or "", now or ""))
        else:
            changes.append(Change(kind, step, field, _show(was), _show(now)))


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.dumps(value, default=str, sort_keys=True, ensure_ascii=False)
