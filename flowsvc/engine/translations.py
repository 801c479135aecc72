"""A template's translations: texts by field path ("steps.where.prompt", "body.text",
"action.buttons[0].reply.title"), applied over a copy of menu_structure, one copy per language."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def path_parts(path: str) -> list[str | int] | None:
    """'a.b[1].c' -> ['a', 'b', 1, 'c']; None when the path is not written that way."""
    parts: list[str | int] = []
    position = 0
    for match in _PART.finditer(path):
        separator = path[position : match.start()]
        if separator not in ("", ".") or (separator == "." and not parts):
            return None
        parts.append(int(match.group(1)) if match.group(1) is not None else match.group(2))
        position = match.end()
    return parts if parts and position == len(path) else None


def text_at(menu: Any, path: str) -> str | None:
    """The text at `path` in `menu`, or None when there is no text there."""
    parts = path_parts(path)
    if parts is None:
        return None
    holder = menu
    for part in parts:
        if isinstance(part, int) and isinstance(holder, list) and 0 <= part < len(holder):
            holder = holder[part]
        elif isinstance(part, str) and isinstance(holder, Mapping) and part in holder:
            holder = holder[part]
        else:
            return None
    return holder if isinstance(holder, str) else None


def translated(menu: Mapping[str, Any], texts: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `menu` with each text at a path in `texts` replaced; other paths are skipped
    (validation reports them)."""
    result = copy.deepcopy(dict(menu))
    for path, text in texts.items():
        parts = path_parts(str(path))
        if not isinstance(text, str) or parts is None or text_at(result, str(path)) is None:
            continue
        holder: Any = result
        for part in parts[:-1]:
            holder = holder[part]
        holder[parts[-1]] = text
    return result
