"""The project's own Meta payloads (tests/fixtures/, see its README): every webhook shape the
gateway handles and the Graph API bodies it sends, so the repository tests itself alone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
WEBHOOKS = FIXTURES / "webhooks"
SENDS = FIXTURES / "sends"


def webhook_names() -> list[str]:
    """Every webhook fixture's name (the file name without `.json`), sorted."""
    return sorted(path.stem for path in WEBHOOKS.glob("*.json"))


def load_webhook(name: str) -> Any:
    """A fresh copy of a webhook POST body, free to change."""
    return json.loads((WEBHOOKS / f"{name}.json").read_text(encoding="utf-8"))


def load_send(name: str) -> Any:
    """A fresh copy of a Graph API request or response body."""
    return json.loads((SENDS / f"{name}.json").read_text(encoding="utf-8"))
