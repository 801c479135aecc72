"""The fixtures stand for Meta's payloads: each is listed with the page it follows, and no real
phone number is in them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.payloads import FIXTURES, SENDS, WEBHOOKS

README = (FIXTURES / "README.md").read_text(encoding="utf-8")
FILES = sorted([*WEBHOOKS.glob("*.json"), *SENDS.glob("*.json")])
PHONE_KEYS = {"from", "wa_id", "recipient_id", "display_phone_number", "input", "to", "phone"}


def listed(folder: str) -> list[str]:
    section = README.split(f"## {folder}/", 1)[1].split("\n## ", 1)[0]
    return sorted(re.findall(r"^\| `([^`]+\.json)` \|", section, flags=re.MULTILINE))


@pytest.mark.parametrize("folder", [WEBHOOKS, SENDS], ids=lambda p: p.name)
def test_every_fixture_is_listed_with_its_source_and_nothing_else(folder: Path) -> None:
    assert listed(folder.name) == sorted(p.name for p in folder.glob("*.json"))


def phone_numbers(document: Any) -> list[str]:
    if isinstance(document, dict):
        found = [str(v) for k, v in document.items() if k in PHONE_KEYS and not isinstance(v, dict)]
        return found + [n for v in document.values() for n in phone_numbers(v)]
    if isinstance(document, list):
        return [n for item in document for n in phone_numbers(item)]
    return []


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_phone_numbers_are_fake(path: Path) -> None:
    numbers = phone_numbers(json.loads(path.read_text(encoding="utf-8")))
    assert all(re.sub(r"[ +]", "", n).startswith("1555") for n in numbers), numbers
