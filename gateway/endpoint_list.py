"""What CALL_ENDPOINTS and EVENT_ENDPOINTS have in common: a JSON list of named endpoint objects,
each with an http(s) URL (plain http only to a loopback address, a service on the same host).
Each setting's module reads the rest of its own keys from the entries this hands it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from menuflow.environment import SettingsError

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Entry:
    """One endpoint object whose name and URL are checked; `where` names it in errors."""

    where: str  # e.g. "CALL_ENDPOINTS[address_check]"
    name: str
    url: str
    item: Mapping[str, Any]


def read_entries(setting: str, raw: str, keys: set[str], max_name: int) -> list[Entry]:
    """The entries of `setting`'s JSON `raw` (none when blank): each an object of `keys` only,
    with a unique `name` (letters, digits, _ . -, at most `max_name`) and a `url`;
    SettingsError naming the problem otherwise."""
    if not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"{setting} is not JSON: {error}") from None
    if not isinstance(items, list):
        raise SettingsError(f"{setting} must be a JSON list of endpoint objects")
    pattern = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{max_name - 1}}}")
    entries = [_entry(setting, n, item, keys, pattern, max_name) for n, item in enumerate(items)]
    names = [entry.name for entry in entries]
    if len(set(names)) != len(names):
        raise SettingsError(f"{setting}: endpoint names must be unique, got {names}")
    return entries


def _entry(
    setting: str, n: int, item: Any, keys: set[str], pattern: re.Pattern[str], max_name: int
) -> Entry:
    where = f"{setting}[{n}]"
    if not isinstance(item, dict):
        raise SettingsError(f"{where} must be an object")
    unknown = set(item) - keys
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(keys)})")
    name = item.get("name")
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise SettingsError(f"{where}.name: required, letters, digits, _ . - (at most {max_name})")
    where = f"{setting}[{name}]"
    url = item.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"{where}.url: required, an https:// URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise SettingsError(f"{where}.url: https only (plain http only to a loopback address)")
    return Entry(where, name, str(url), item)
