"""Any walk through the shipped templates yields only bodies Meta accepts, and never crashes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from flowsvc.engine import (
    Decision,
    EngineConfig,
    Facts,
    Inbound,
    Needs,
    OrderFact,
    State,
    advance,
    limits,
)
from tests.engine_calls import CATALOG, NOW

OPTION_IDS = sorted(
    {
        option.id
        for template in CATALOG.templates.values()
        for message in (template.first, *(s.message for s in template.steps.values()))
        if message is not None
        for option in message.options
    }
)
WORDS = ["hi", "help", "menu", "back", "cancel", "order", "my orders", "2", "99", "0", "yes"]
ORDERS = (
    OrderFact(
        "K7M4Q2",
        "new_order",
        1,
        {"product_title": "Coffee", "quantity": 2, "total": "7.00"},
        datetime(2025, 11, 20, tzinfo=UTC),
    ),
    OrderFact(
        "ABC234",
        "new_order",
        1,
        {"product_title": "x" * 500, "quantity": 99, "total": "891.00"},
        datetime(2025, 11, 21, tzinfo=UTC),
    ),
)

inbounds = st.one_of(
    st.builds(Inbound, text=st.sampled_from(WORDS)),
    st.builds(Inbound, text=st.text(max_size=3000)),
    st.builds(Inbound, text=st.sampled_from(["K7M4Q2", "abc-234", "ZZZZZZ"])),
    st.builds(
        Inbound, selection_id=st.sampled_from(OPTION_IDS), selection_title=st.text(max_size=30)
    ),
    st.builds(Inbound, unsupported_type=st.sampled_from(["image", "sticker"])),
    st.builds(Inbound, text=st.sampled_from(WORDS), contact_name=st.text(max_size=2000)),
)


def assert_within_limits(message: dict[str, Any]) -> None:
    """Meta's limits (meta-contract.md §6) and nothing but Meta's keys."""
    assert message["messaging_product"] == "whatsapp"
    assert message["recipient_type"] == "individual"
    if message["type"] == "text":
        assert set(message) == {"messaging_product", "recipient_type", "to", "type", "text"}
        assert set(message["text"]) == {"preview_url", "body"}
        assert 0 < len(message["text"]["body"]) <= limits.MAX_TEXT_BODY
        return
    interactive = message["interactive"]
    assert set(interactive) <= {"type", "header", "body", "footer", "action"}
    kind = interactive["type"]
    body_limit = limits.MAX_BODY_WITH_BUTTONS if kind == "button" else limits.MAX_BODY_WITH_LIST
    assert 0 < len(interactive["body"]["text"]) <= body_limit
    header = interactive.get("header", {"type": "text", "text": ""})
    if header["type"] == "text":
        assert set(header) == {"type", "text"}
        assert len(header["text"]) <= limits.MAX_HEADER
    else:  # a media header (the shipped main menu's photo): reply buttons only, no caption
        assert kind == "button" and header["type"] in {"image", "video", "document"}
        assert set(header) == {"type", header["type"]}
        assert set(header[header["type"]]) <= {"link", "id", "filename"}
    if "footer" in interactive:
        assert len(interactive["footer"]["text"]) <= limits.MAX_FOOTER
    action = interactive["action"]
    if kind == "button":
        assert set(action) == {"buttons"}
        titles = [b["reply"]["title"] for b in action["buttons"]]
        assert 1 <= len(titles) <= limits.MAX_BUTTONS
        assert len(set(titles)) == len(titles)
        for button in action["buttons"]:
            assert set(button) == {"type", "reply"} and set(button["reply"]) == {"id", "title"}
            assert len(button["reply"]["title"]) <= limits.MAX_BUTTON_TITLE
            assert len(button["reply"]["id"]) <= limits.MAX_BUTTON_ID
    else:
        assert set(action) == {"button", "sections"}
        assert len(action["button"]) <= limits.MAX_LIST_BUTTON
        assert 1 <= len(action["sections"]) <= limits.MAX_SECTIONS
        rows = [row for section in action["sections"] for row in section["rows"]]
        assert 1 <= len(rows) <= limits.MAX_ROWS
        for section in action["sections"]:
            assert set(section) == {"title", "rows"}
            assert len(section["title"]) <= limits.MAX_SECTION_TITLE
        for row in rows:
            assert set(row) <= {"id", "title", "description"}
            assert len(row["title"]) <= limits.MAX_ROW_TITLE
            assert len(row.get("description", "")) <= limits.MAX_ROW_DESCRIPTION
            assert len(row["id"]) <= limits.MAX_ROW_ID


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(walk=st.lists(st.tuples(inbounds, st.integers(min_value=0, max_value=30)), max_size=12))
def test_random_walks_stay_within_whatsapps_limits(walk: list[tuple[Inbound, int]]) -> None:
    state: State | None = None
    config = EngineConfig()
    now = NOW
    for inbound, hours in walk:
        now += timedelta(hours=hours)
        arguments: dict[str, Any] = {"to": "155", "now": now, "config": config, "reference": "K7"}
        decision = advance(CATALOG, state, inbound, **arguments)
        if isinstance(decision, Needs):
            decision = advance(CATALOG, state, inbound, facts=Facts(ORDERS), **arguments)
        assert isinstance(decision, Decision)
        assert decision.messages, "never silence"
        for message in decision.messages:
            assert_within_limits(message)
            json.dumps(message)
        if decision.state is not None:
            json.dumps(dict(decision.state.context))
            assert decision.state.expires_at > now
        state = decision.state
