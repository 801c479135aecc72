"""The webhook parser reads every shape Meta sends, and skips (never crashes on) what it cannot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.payload import parse
from menuflow.v1 import flow_pb2

WEBHOOKS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "webhooks"


def corpus(name: str) -> Any:
    return json.loads((WEBHOOKS / f"{name}.json").read_text())


def content(message: flow_pb2.InboundMessage) -> tuple[str, Any]:
    kind = message.WhichOneof("content") or ""
    value = getattr(message, kind) if kind else None
    if kind == "selection":
        value = (value.id, value.title, value.description)
    return kind, value


EXPECTED = {
    "metadocs__webhooks_overview__text": ("text", "Does it come in another color?"),
    "metadocs__interactive_reply_buttons__button_reply": (
        "selection",
        ("change-button", "Change", ""),
    ),
    "metadocs__interactive_list__list_reply": (
        "selection",
        ("priority_express", "Priority Mail Express", "Next Day to 2 Days"),
    ),
    "pywa__callback_button__quick_reply": ("selection", ("callback_data", "title", "")),
    "pywa__callback_selection__description": (
        "selection",
        ("callback_data", "title", "description"),
    ),
    "pywa__flow_completion__completion": ("unsupported_type", "nfm_reply"),
    "pywa__call_permission_update__accept": ("unsupported_type", "call_permission_reply"),
    "pywa__message__interactive_message_with_err": ("unsupported_type", "interactive"),
    "pywa__message__image": ("unsupported_type", "image"),
    "pywa__message__reaction": ("unsupported_type", "reaction"),
    "pywa__message__unsupported_with_type": ("unsupported_type", "unsupported"),
    "pywa__system__phone_number_change": ("unsupported_type", "system"),
    "pywa__message__referral": ("text", "BODY"),
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_each_message_type_is_mapped(name: str, expected: tuple[str, Any]) -> None:
    parsed = parse(corpus(name))
    [message] = parsed.messages
    assert content(message) == expected
    assert message.message_id and message.customer.phone_number
    assert message.sent_time.seconds > 1_600_000_000
    assert (parsed.skipped, parsed.statuses) == (0, [])


def test_the_customer_is_the_sender_and_our_number_is_the_metadatas() -> None:
    [message] = parse(corpus("metadocs__webhooks_overview__text")).messages
    assert message.customer.phone_number_id == "106540352242922"
    assert message.customer.phone_number == "16505551234"
    assert message.contact_name == "Sheena Nelson"
    assert message.sent_time.seconds == 1749416383


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in WEBHOOKS.glob("*.json")), ids=lambda name: name
)
def test_every_corpus_file_parses_without_skipping(name: str) -> None:
    parsed = parse(corpus(name))
    assert parsed.skipped == 0
    assert len(parsed.messages) + len(parsed.statuses) + parsed.ignored == 1


def test_a_failed_status_carries_metas_errors() -> None:
    [status] = parse(corpus("pywa__message_status__failed")).statuses
    assert status.wa_message_id == "wamid.xyzxyz"
    assert status.status == flow_pb2.DELIVERY_STATUS_FAILED
    assert status.recipient_id == "972987654321"
    assert status.status_time.seconds == 1689380458
    [error] = status.errors
    assert (error.code, error.title) == (130472, "User's number is part of an experiment")
    assert error.details.startswith("Failed to send message")


def test_a_batch_yields_every_entry_change_message_and_status_in_order() -> None:
    text = corpus("pywa__message__text")
    status = corpus("pywa__message_status__read")
    change = text["entry"][0]["changes"][0]
    value = change["value"]
    second = dict(value["messages"][0], id="wamid.second", timestamp="1")
    value["messages"].append(second)
    value["statuses"] = status["entry"][0]["changes"][0]["value"]["statuses"]
    other = corpus("pywa__template_status_update__approved")["entry"][0]
    document = {
        "entry": [text["entry"][0], other, corpus("metadocs__webhooks_overview__text")["entry"][0]]
    }
    parsed = parse(document)
    assert [m.message_id for m in parsed.messages][1] == "wamid.second"
    assert len(parsed.messages) == 3
    assert len(parsed.statuses) == 1
    assert parsed.ignored == 1


WEIRD: list[Any] = [
    None,
    [],
    "text",
    {"entry": None},
    {"entry": [None, 1, "x", {"changes": "no"}]},
    {"entry": [{"changes": [{"field": "messages", "value": None}]}]},
    {"entry": [{"changes": [{"field": "messages", "value": {"messages": {"id": "x"}}}]}]},
    {"entry": [{"changes": [{"field": "messages", "value": {"messages": [1, None, []]}}]}]},
    {
        "entry": [
            {
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "metadata": {"phone_number_id": 123},
                            "messages": [
                                {"id": "a", "from": 4915, "timestamp": "1e9", "type": None},
                                {"id": "b", "from": "1", "type": "text", "text": "plain"},
                                {"id": "c", "from": "1", "type": "interactive", "interactive": []},
                                {"id": "d", "from": "1", "type": "button", "button": None},
                                {"id": "e\ud800", "from": "1", "timestamp": "9" * 40},
                            ],
                            "statuses": [
                                {"id": "s", "status": "deleted"},
                                {"status": "read"},
                                {"id": "t", "status": "failed", "errors": [{"code": 2**40}]},
                            ],
                        },
                    }
                ]
            }
        ]
    },
]


@pytest.mark.parametrize("document", WEIRD, ids=[f"weird{i}" for i in range(len(WEIRD))])
def test_weird_shapes_are_skipped_and_counted_never_raised(document: Any) -> None:
    parsed = parse(document)
    for message in parsed.messages:
        message.SerializeToString()
    for status in parsed.statuses:
        status.SerializeToString()


def test_what_weird_shapes_become() -> None:
    parsed = parse(WEIRD[-1])
    kinds = [(m.message_id, content(m)) for m in parsed.messages]
    assert kinds == [
        ("a", ("unsupported_type", "unknown")),
        ("b", ("unsupported_type", "text")),
        ("c", ("unsupported_type", "interactive")),
        ("d", ("unsupported_type", "button")),
        ("e?", ("unsupported_type", "unknown")),
    ]
    assert parsed.messages[0].customer.phone_number == "4915"
    assert not parsed.messages[0].HasField("sent_time")
    assert [s.wa_message_id for s in parsed.statuses] == ["t"]
    assert parsed.statuses[0].errors[0].code == 0
    assert parsed.skipped == 2
