"""What the engine tests share: the shipped templates as a Catalog, fixed inputs, and one call of
advance() that must come back with a decision."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from flowsvc.engine import (
    Catalog,
    Decision,
    EngineConfig,
    Facts,
    Inbound,
    State,
    Template,
    advance,
    load_template,
)

TEMPLATES = Path(__file__).resolve().parents[1] / "flowsvc" / "default_templates"
NOW = datetime(2025, 11, 28, 12, 0, tzinfo=UTC)
TO = "16505551234"
REF = "K7M4Q2"
CONFIG = EngineConfig()


def shipped(**overrides: bool) -> list[Template]:
    """The four default templates, version 1; `overrides` sets is_active per name."""
    templates = []
    for path in sorted(TEMPLATES.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        templates.append(
            load_template(
                raw["name"],
                1,
                raw["menu_structure"],
                trigger_keywords=raw["trigger_keywords"],
                is_active=overrides.get(raw["name"], raw["is_active"]),
            )
        )
    return templates


CATALOG = Catalog.build(shipped())


def decide(
    state: State | None,
    inbound: Inbound,
    *,
    catalog: Catalog = CATALOG,
    now: datetime = NOW,
    facts: Facts | None = None,
    config: EngineConfig = CONFIG,
    expired_since: bool = False,
    language: str | None = None,
    to: str = TO,
) -> Decision:
    decision = advance(
        catalog,
        state,
        inbound,
        to=to,
        now=now,
        config=config,
        reference=REF,
        facts=facts,
        expired_since=expired_since,
        language=language,
    )
    assert isinstance(decision, Decision), decision
    return decision
