"""Menus built from data: a list or button message whose rows come from a list in the context.

A template writes `"action": {"button": "Times", "rows_from": {...}}` (a list) or
`"action": {"buttons_from": {...}}` (reply buttons); the rows are built when the message is sent,
within WhatsApp's limits however long the list is (meta-contract.md §6):

- at most 10 rows in a list message: more items become pages, each ending in a "More" row, and
  each page after the first starting with a "Previous" row (in the customer's language: NavWords,
  menuflow's own texts `more`, `previous`, `more_section`, `previous_section` and `choose`);
- at most 3 reply buttons: more items (or titles that would not be unique once cut) are sent as
  a list instead;
- titles and descriptions over the limit are cut with an ellipsis, never sent too long.

A row's id names the item by its position and a short fingerprint of its content, so a tap on a
row of any page (even an older message's) finds its item without remembering the page, and a
tap on an item that has since left the list is recognised as stale rather than taken for
another one. Pure: the flow (flow.py) decides what a choice does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.keywords import phrase
from flowsvc.engine.render import ELLIPSIS, fill, placeholder_names, truncate

_PAGE = "page"
_FINGERPRINT_CHARS = 8


@dataclass(frozen=True)
class RowsFrom:
    """`rows_from` / `buttons_from`: where a message's choices come from and what a tap stores.

    `items` names the context list; `title` and `description` are texts filled from each item's
    fields (and the context); `store_as` is the context key the chosen item goes to; `empty` is
    the target taken instead of sending the message when the list is missing or empty;
    `section` titles the section of items; `list_button` labels the list that buttons become
    when there are more than three.
    """

    items: str
    title: str
    store_as: str
    description: str | None = None
    empty: str | None = None
    section: str | None = None
    list_button: str | None = None


@dataclass(frozen=True)
class NavWords:
    """The words a built menu says itself, in one language (menuflow's own texts, wording.py):
    the paging rows' titles, the titles of the sections holding them, and the list button of
    reply buttons that became a list. The defaults are English's (EngineConfig's)."""

    more: str = "More ▸"
    previous: str = "◂ Previous"
    more_section: str = "More"
    previous_section: str = "Back"
    choose: str = "Choose"


ENGLISH = NavWords()
NAV_KEYS = ("more", "previous", "more_section", "previous_section", "choose")
"""NavWords' fields, which are also their keys in wording.OWN_TEXTS."""


@dataclass(frozen=True)
class BuiltOption:
    """One row or button as sent: its id, title and description as cut to Meta's limits."""

    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class BuiltPage:
    """What one message of a built menu shows: items (first to last), then navigation rows."""

    as_list: bool
    items: tuple[BuiltOption, ...]
    previous: BuiltOption | None
    more: BuiltOption | None


@dataclass(frozen=True)
class Chosen:
    """A tap (or typed title or number) that names an item of the list."""

    item: Any
    position: int  # 0-based, in the list as it is now
    title: str

    def stored(self, store_as: str) -> dict[str, Any]:
        """What the choice puts in the context: the item under `store_as`, and each of its
        fields under `<store_as>_<field>` so placeholders and rules can read them."""
        values: dict[str, Any] = {store_as: self.item}
        for name, value in _fields(self.item).items():
            values[f"{store_as}_{name}"] = value
        return values


@dataclass(frozen=True)
class Page:
    """A tap on "More" or "Previous": show page `number` (0-based)."""

    number: int


def parse_rows_from(raw: Any) -> RowsFrom | None:
    """`rows_from` / `buttons_from` as written (already validated); None when it is not there."""
    if not isinstance(raw, Mapping):
        return None
    items, title, store_as = raw.get("items"), raw.get("title"), raw.get("store_as")
    if not (isinstance(items, str) and isinstance(title, str) and isinstance(store_as, str)):
        return None
    return RowsFrom(
        items=items,
        title=title,
        store_as=store_as,
        description=_text(raw.get("description")),
        empty=_text(raw.get("empty")),
        section=_text(raw.get("section")),
        list_button=_text(raw.get("list_button")),
    )


def items_of(spec: RowsFrom, context: Mapping[str, Any]) -> list[Any]:
    """The context list the menu is built from; anything else (missing, not a list) is empty."""
    value = context.get(spec.items)
    return list(value) if isinstance(value, list | tuple) else []


def sample_items(spec: RowsFrom) -> list[Any]:
    """One item whose fields are their own names, for a preview without data."""
    texts = [spec.title, spec.description or ""]
    return [{name: f"({name})" for text in texts for name in sorted(placeholder_names(text))}]


def page_starts(count: int) -> list[int]:
    """Where each page of a list of `count` items begins. A page holds at most MAX_ROWS rows:
    its items, "Previous" on every page but the first, "More" on every page but the last."""
    starts = [0]
    start = 0
    while True:
        previous = 1 if starts[-1] > 0 else 0
        if count - start <= limits.MAX_ROWS - previous:
            return starts
        start += limits.MAX_ROWS - previous - 1
        starts.append(start)


def page(
    spec: RowsFrom,
    context: Mapping[str, Any],
    number: int,
    *,
    buttons: bool,
    items: Sequence[Any] | None = None,
    words: NavWords = ENGLISH,
) -> BuiltPage:
    """Page `number` (clamped to the pages there are) of the menu as sent; `buttons`: the
    template asked for reply buttons, which are kept when the items fit in three; `words`: the
    paging rows' titles in the customer's language."""
    found = list(items) if items is not None else items_of(spec, context)
    if buttons and len(found) <= limits.MAX_BUTTONS:
        shown = tuple(_option(spec, context, found, i, button=True) for i in range(len(found)))
        titles = {phrase(option.title) for option in shown}
        if len(titles) == len(shown):  # Meta rejects repeated button titles
            return BuiltPage(False, shown, None, None)
    starts = page_starts(len(found))
    number = min(max(number, 0), len(starts) - 1)
    start = starts[number]
    end = starts[number + 1] if number + 1 < len(starts) else len(found)
    rows = tuple(_option(spec, context, found, i, button=False) for i in range(start, end))
    previous = _nav(spec, number - 1, words.previous) if number > 0 else None
    more = _nav(spec, number + 1, words.more) if end < len(found) else None
    return BuiltPage(True, rows, previous, more)


def resolve(spec: RowsFrom, context: Mapping[str, Any], option_id: str) -> Chosen | Page | None:
    """What a tap on `option_id` means now: an item, a page, or None (not one of this menu's
    ids, or an item no longer in the list: stale)."""
    prefix = f"{spec.store_as}."
    if not option_id.startswith(prefix):
        return None
    rest = option_id[len(prefix) :]
    if rest.startswith(f"{_PAGE}."):
        number = rest[len(_PAGE) + 1 :]
        return Page(int(number)) if number.isdigit() and len(number) < 7 else None
    position, _, mark = rest.partition(".")
    if not position.isdigit() or len(position) > 6:
        return None
    found = items_of(spec, context)
    index = int(position)
    if index < len(found) and fingerprint(found[index]) == mark:
        return Chosen(found[index], index, full_title(spec, context, found[index], index))
    # The list changed since the row was sent: the same item elsewhere still counts.
    for other, item in enumerate(found):
        if fingerprint(item) == mark:
            return Chosen(item, other, full_title(spec, context, item, other))
    return None


def match_typed(spec: RowsFrom, context: Mapping[str, Any], text: str) -> Chosen | None:
    """A typed text that names an item: its title (whole or as cut, any case or accents), or
    its number in the whole list (1 for the first)."""
    said = phrase(text)
    if not said:
        return None
    found = items_of(spec, context)
    if said.isdigit() and len(said) < 7 and 1 <= int(said) <= len(found):
        index = int(said) - 1
        return Chosen(found[index], index, full_title(spec, context, found[index], index))
    for index, item in enumerate(found):
        title = full_title(spec, context, item, index)
        if said in (phrase(title), phrase(truncate(title, limits.MAX_ROW_TITLE))):
            return Chosen(item, index, title)
    return None


def full_title(spec: RowsFrom, context: Mapping[str, Any], item: Any, index: int) -> str:
    """An item's title before it is cut; its number when the title comes out empty."""
    return fill(spec.title, _values(context, item)).strip() or str(index + 1)


def fingerprint(item: Any) -> str:
    """A short digest of an item's content: enough to tell whether a tapped row's item is still
    the one at that position. Not a secret."""
    encoded = json.dumps(item, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:_FINGERPRINT_CHARS]


def _option(
    spec: RowsFrom, context: Mapping[str, Any], found: Sequence[Any], index: int, *, button: bool
) -> BuiltOption:
    item = found[index]
    option_id = f"{spec.store_as}.{index}.{fingerprint(item)}"
    limit = limits.MAX_BUTTON_TITLE if button else limits.MAX_ROW_TITLE
    title = truncate(full_title(spec, context, item, index), limit)
    description = None
    if spec.description and not button:
        text = fill(spec.description, _values(context, item)).strip()
        description = truncate(text, limits.MAX_ROW_DESCRIPTION) if text else None
    return BuiltOption(option_id, title or ELLIPSIS, description)


def _nav(spec: RowsFrom, number: int, title: str) -> BuiltOption:
    return BuiltOption(f"{spec.store_as}.{_PAGE}.{number}", truncate(title, limits.MAX_ROW_TITLE))


def _fields(item: Any) -> dict[str, Any]:
    """An item's fields: an object's own keys, or `value` for a plain string or number."""
    if isinstance(item, Mapping):
        return {str(key): value for key, value in item.items()}
    return {"value": item}


def _values(context: Mapping[str, Any], item: Any) -> Mapping[str, Any]:
    return {**context, **_fields(item)}


def _text(raw: Any) -> str | None:
    return raw if isinstance(raw, str) else None
