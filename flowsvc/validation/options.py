"""Checks on what a message offers to tap: its reply buttons or list rows, ids, titles, labels."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowsvc.engine import limits
from flowsvc.validation.context import check_set
from flowsvc.validation.violation import Violation, check_keys, clip, kind, quote


@dataclass(frozen=True)
class Offer:
    """A button or list row a customer can tap: its id, and whether tapping it sets context."""

    id: str
    sets: frozenset[str]


def check_buttons(
    action: Mapping[object, object], path: str, out: list[Violation]
) -> list[Offer] | None:
    if "buttons_from" in action:  # built from data when sent: flowsvc.validation.built
        check_keys(action, ("buttons_from",), path, out)
        if "buttons" in action:
            out.append(Violation(f"{path}.buttons", "give buttons or buttons_from, not both"))
        return []
    check_keys(action, ("buttons",), path, out)
    hint = " (use a list message for more choices)"
    buttons = _counted(
        action, "buttons", path, out, most=limits.MAX_BUTTONS, wanted="reply buttons", hint=hint
    )
    if buttons is None:
        return None
    offers: list[Offer] = []
    ids: dict[str, str] = {}
    titles: dict[str, str] = {}
    for index, button in enumerate(buttons):
        button_path = f"{path}.buttons[{index}]"
        if not isinstance(button, Mapping):
            out.append(
                Violation(
                    button_path,
                    'must be an object like {"type": "reply", "reply": {"id": ..., "title": ...}}, '
                    f"not {kind(button)}",
                )
            )
            continue
        check_keys(button, ("type", "reply", "set"), button_path, out)
        if button.get("type") != "reply":
            out.append(
                Violation(f"{button_path}.type", "must be 'reply', the only kind of reply button")
            )
        if "set" in button:
            check_set(button["set"], f"{button_path}.set", out)
        reply = button.get("reply")
        if not isinstance(reply, Mapping):
            problem = "is missing" if reply is None else f"must be an object, not {kind(reply)}"
            out.append(
                Violation(f"{button_path}.reply", f'{problem}: give {{"id": ..., "title": ...}}')
            )
            continue
        reply_path = f"{button_path}.reply"
        check_keys(reply, ("id", "title", "set"), reply_path, out)
        if "set" in reply:
            check_set(reply["set"], f"{reply_path}.set", out)
        _check_title(reply.get("title"), f"{reply_path}.title", out, titles)
        option_id = _check_id(
            reply.get("id"), f"{reply_path}.id", out, limit=limits.MAX_BUTTON_ID, seen=ids
        )
        if option_id is not None:
            offers.append(Offer(option_id, _option_sets(button, reply)))
    return offers


def _check_title(value: object, path: str, out: list[Violation], seen: dict[str, str]) -> None:
    """Button titles are unique; compared case-insensitively, as a typed title selects a button."""
    if not _check_label(value, path, out, limit=limits.MAX_BUTTON_TITLE, what="title"):
        return
    assert isinstance(value, str)
    folded = value.strip().casefold()
    if folded in seen:
        out.append(
            Violation(
                path,
                f"title '{clip(value)}' is already used by {seen[folded]}: "
                "button titles must be unique",
            )
        )
    else:
        seen[folded] = path


def check_list(
    action: Mapping[object, object], path: str, out: list[Violation]
) -> list[Offer] | None:
    built = "rows_from" in action  # rows built from data when sent: flowsvc.validation.built
    check_keys(action, ("button", "rows_from" if built else "sections"), path, out)
    if "button" not in action:
        out.append(
            Violation(f"{path}.button", "is missing: the label of the button that opens the list")
        )
    else:
        _check_label(
            action["button"], f"{path}.button", out, limit=limits.MAX_LIST_BUTTON, what="label"
        )
    if built:
        return []
    sections = _counted(
        action, "sections", path, out, most=limits.MAX_SECTIONS, wanted="sections of rows"
    )
    if sections is None:
        return None
    offers: list[Offer] = []
    ids: dict[str, str] = {}
    rows_in_all = 0
    for index, section in enumerate(sections):
        section_path = f"{path}.sections[{index}]"
        if not isinstance(section, Mapping):
            out.append(
                Violation(
                    section_path,
                    f'must be an object like {{"title": ..., "rows": [...]}}, not {kind(section)}',
                )
            )
            continue
        check_keys(section, ("title", "rows"), section_path, out)
        if "title" in section:
            _check_label(
                section["title"],
                f"{section_path}.title",
                out,
                limit=limits.MAX_SECTION_TITLE,
                what="title",
            )
        elif len(sections) > 1:
            out.append(
                Violation(
                    f"{section_path}.title",
                    "is missing: a list with several sections needs a title on each",
                )
            )
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            if isinstance(rows, list):
                problem = "is empty"
            else:
                problem = "is missing" if rows is None else f"must be a list, not {quote(rows)}"
            out.append(
                Violation(f"{section_path}.rows", f"{problem}: a section needs at least one row")
            )
            continue
        rows_in_all += len(rows)
        for row_index, row in enumerate(rows):
            offer = _check_row(row, f"{section_path}.rows[{row_index}]", out, ids)
            if offer is not None:
                offers.append(offer)
    if rows_in_all > limits.MAX_ROWS:
        out.append(
            Violation(
                f"{path}.sections",
                f"has {rows_in_all} rows in all; WhatsApp allows at most {limits.MAX_ROWS} "
                "across all sections together",
            )
        )
    return offers


def _check_row(row: object, path: str, out: list[Violation], ids: dict[str, str]) -> Offer | None:
    if not isinstance(row, Mapping):
        out.append(
            Violation(path, f'must be an object like {{"id": ..., "title": ...}}, not {kind(row)}')
        )
        return None
    check_keys(row, ("id", "title", "description", "set"), path, out)
    _check_label(row.get("title"), f"{path}.title", out, limit=limits.MAX_ROW_TITLE, what="title")
    if "description" in row:
        description = row["description"]
        if not isinstance(description, str):
            out.append(
                Violation(f"{path}.description", f"must be a string, not {kind(description)}")
            )
        elif len(description) > limits.MAX_ROW_DESCRIPTION:
            out.append(
                Violation(
                    f"{path}.description",
                    f"is {len(description)} characters long; WhatsApp allows at most "
                    f"{limits.MAX_ROW_DESCRIPTION}",
                )
            )
    if "set" in row:
        check_set(row["set"], f"{path}.set", out)
    option_id = _check_id(row.get("id"), f"{path}.id", out, limit=limits.MAX_ROW_ID, seen=ids)
    return None if option_id is None else Offer(option_id, _option_sets(row))


def _counted(
    action: Mapping[object, object],
    key: str,
    path: str,
    out: list[Violation],
    *,
    most: int,
    wanted: str,
    hint: str = "",
) -> list[Any] | None:
    """action[key] as a list of 1 to `most` items, as WhatsApp counts buttons and sections.

    None when it is no list at all, so the items are not checked one by one.
    """
    value = action.get(key)
    if not isinstance(value, list):
        problem = "is missing" if value is None else f"must be a list, not {kind(value)}"
        out.append(Violation(f"{path}.{key}", f"{problem}: give 1 to {most} {wanted}"))
        return None
    if not 1 <= len(value) <= most:
        out.append(
            Violation(f"{path}.{key}", f"has {len(value)} {key}; WhatsApp allows 1 to {most}{hint}")
        )
    return value


def _check_label(value: object, path: str, out: list[Violation], *, limit: int, what: str) -> bool:
    """A title, id or label: a non-empty string within `limit` code points. True when fine."""
    if not isinstance(value, str):
        out.append(Violation(path, f"{what} must be a string, not {kind(value)}"))
        return False
    if not value.strip():
        out.append(Violation(path, f"{what} is empty"))
        return False
    if len(value) > limit:
        out.append(
            Violation(
                path, f"{what} is {len(value)} characters long; WhatsApp allows at most {limit}"
            )
        )
    return True


def _check_id(
    value: object, path: str, out: list[Violation], *, limit: int, seen: dict[str, str]
) -> str | None:
    """An option id: within limits, without surrounding spaces, unique in the message."""
    if not _check_label(value, path, out, limit=limit, what="id"):
        return None
    assert isinstance(value, str)
    if value != value.strip():
        out.append(
            Violation(path, f"id '{clip(value)}' has leading or trailing spaces: remove them")
        )
    if value in seen:
        out.append(
            Violation(
                path, f"id '{clip(value)}' is already used by {seen[value]}: ids must be unique"
            )
        )
        return None
    seen[value] = path
    return value


def _option_sets(*holders: Mapping[object, object]) -> frozenset[str]:
    keys: set[str] = set()
    for holder in holders:
        values = holder.get("set")
        if isinstance(values, Mapping):
            keys.update(key for key in values if isinstance(key, str))
    return frozenset(keys)
