"""The webhook parser reads every shape Meta sends, and skips (never crashes on) what it cannot."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import json_format

from gateway.payload import parse
from menuflow.v1 import flow_pb2
from tests.payloads import load_webhook, webhook_names


def content(message: flow_pb2.InboundMessage) -> tuple[str, Any]:
    kind = message.WhichOneof("content") or ""
    value = getattr(message, kind) if kind else None
    if kind == "selection":
        value = (value.id, value.title, value.description)
    elif kind == "media":
        value = (value.type, value.id, value.mime_type, value.caption)
    elif kind == "location":
        value = (value.latitude, value.longitude, value.name, value.address)
    elif kind == "contacts":
        value = [(card.name, list(card.phones)) for card in value.cards]
    elif kind == "flow_reply":
        value = (value.flow_token, json_format.MessageToDict(value.response), value.body)
    return kind, value


ADA, BOB = "15551230001", "15551230002"
ONE, TWO = "100000000000001", "100000000000002"

# Each fixture holding one message: what the gateway hands FlowService for it.
ONE_MESSAGE = {
    "text": ("text", "hi"),
    "interactive_button_reply": ("selection", ("new_order", "🛒 New Order", "")),
    "interactive_list_reply": ("selection", ("coffee", "Coffee", "$3.50")),
    "button_quick_reply": ("selection", ("track_order", "Track my order", "")),
    "image": ("media", ("image", "1555000000000001", "image/jpeg", "My receipt")),
    "audio": ("media", ("audio", "1555000000000002", "audio/ogg; codecs=opus", "")),
    "video": ("media", ("video", "1555000000000003", "video/mp4", "Unboxing")),
    "document": ("media", ("document", "1555000000000004", "application/pdf", "Invoice")),
    "sticker": ("media", ("sticker", "1555000000000005", "image/webp", "")),
    "location": ("location", (52.52, 13.405, "Coffee Corner", "1 Example Street")),
    "contacts": ("contacts", [("Carol Example", ["+1 555 123 0003"])]),
    "interactive_nfm_reply": (
        "flow_reply",
        (
            "K7M4Q2",
            {
                "slot": "19:30",
                "seating": "terrace",
                "guests": 4.0,  # a Struct's numbers are doubles; flowsvc gives back 4
                "notes": "Window seat, please",
                "allergies": ["nuts", "shellfish"],
            },
            "Sent",
        ),
    ),
    "reaction": ("unsupported_type", "reaction"),
    "revoke": ("unsupported_type", "revoke"),
    "edit": ("unsupported_type", "edit"),
    "unsupported": ("unsupported_type", "unsupported"),
    "system_customer_changed_number": ("unsupported_type", "system"),
    "errors": ("unsupported_type", "interactive"),
    "second_business_number": ("text", "hi"),
}
STATUSES = {
    "status_sent": flow_pb2.DELIVERY_STATUS_SENT,
    "status_delivered": flow_pb2.DELIVERY_STATUS_DELIVERED,
    "status_read": flow_pb2.DELIVERY_STATUS_READ,
    "status_played": flow_pb2.DELIVERY_STATUS_PLAYED,
    "status_failed": flow_pb2.DELIVERY_STATUS_FAILED,
    "status_sent_tracked": flow_pb2.DELIVERY_STATUS_SENT,
}
BATCHES = ["several_messages", "several_entries"]
OTHER_FIELDS = ["template_status_update"]


def test_every_fixture_is_covered_here() -> None:
    covered = [*ONE_MESSAGE, *STATUSES, *BATCHES, *OTHER_FIELDS]
    assert sorted(covered) == webhook_names()


@pytest.mark.parametrize(("name", "expected"), ONE_MESSAGE.items(), ids=list(ONE_MESSAGE))
def test_each_message_type_is_mapped(name: str, expected: tuple[str, Any]) -> None:
    parsed = parse(load_webhook(name))
    [message] = parsed.messages
    assert content(message) == expected
    assert message.message_id.startswith("wamid.FIXTURE")
    assert message.customer.phone_number == ADA
    assert message.sent_time.seconds > 1_700_000_000
    assert (parsed.skipped, parsed.ignored, parsed.statuses) == (0, 0, [])


def test_the_customer_is_the_sender_and_our_number_is_the_metadatas() -> None:
    [message] = parse(load_webhook("text")).messages
    assert message.customer.phone_number_id == ONE
    assert message.customer.phone_number == ADA
    assert message.contact_name == "Ada Customer"
    assert message.sent_time.seconds == 1764590400
    [other] = parse(load_webhook("second_business_number")).messages
    assert other.customer.phone_number_id == TWO


def test_a_changed_number_comes_without_a_contact_name() -> None:
    [message] = parse(load_webhook("system_customer_changed_number")).messages
    assert (message.customer.phone_number, message.contact_name) == (ADA, "")


@pytest.mark.parametrize(("name", "kind"), STATUSES.items(), ids=list(STATUSES))
def test_each_status_is_mapped(name: str, kind: int) -> None:
    parsed = parse(load_webhook(name))
    [status] = parsed.statuses
    assert status.status == kind
    assert (status.wa_message_id, status.recipient_id) == ("wamid.FIXTUREOURREPLY0001", ADA)
    assert status.status_time.seconds > 1_700_000_000
    assert (parsed.skipped, parsed.ignored, parsed.messages) == (0, 0, [])


def test_a_failed_status_carries_metas_errors() -> None:
    [status] = parse(load_webhook("status_failed")).statuses
    [error] = status.errors
    assert (error.code, error.title) == (131047, "Re-engagement message")
    assert error.details.startswith("Message failed to send because more than 24 hours")


def test_several_messages_in_one_change_keep_their_order() -> None:
    parsed = parse(load_webhook("several_messages"))
    assert [(m.customer.phone_number, m.text) for m in parsed.messages] == [
        (ADA, "hi"),
        (BOB, "hello"),
        (ADA, "menu"),
    ]
    assert [m.contact_name for m in parsed.messages] == [
        "Ada Customer",
        "Bob Customer",
        "Ada Customer",
    ]


def test_several_entries_yield_each_message_and_status_with_its_own_number() -> None:
    parsed = parse(load_webhook("several_entries"))
    assert [(m.customer.phone_number_id, m.customer.phone_number) for m in parsed.messages] == [
        (ONE, BOB),
        (TWO, ADA),
    ]
    [status] = parsed.statuses
    assert status.status == flow_pb2.DELIVERY_STATUS_DELIVERED
    assert (parsed.skipped, parsed.ignored) == (0, 0)


def test_another_field_is_counted_as_ignored() -> None:
    parsed = parse(load_webhook("template_status_update"))
    assert (parsed.messages, parsed.statuses, parsed.ignored) == ([], [], 1)


def test_a_batch_yields_every_entry_change_message_and_status_in_order() -> None:
    text = load_webhook("text")
    value = text["entry"][0]["changes"][0]["value"]
    second = dict(value["messages"][0], id="wamid.second", timestamp="1")
    value["messages"].append(second)
    value["statuses"] = load_webhook("status_read")["entry"][0]["changes"][0]["value"]["statuses"]
    other = load_webhook("template_status_update")["entry"][0]
    document = {
        "entry": [text["entry"][0], other, load_webhook("second_business_number")["entry"][0]]
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


def test_a_status_echoing_our_tracker_names_the_outbox_message() -> None:
    [tracked] = parse(load_webhook("status_sent_tracked")).statuses
    [untracked] = parse(load_webhook("status_sent")).statuses
    assert (tracked.outbox_id, untracked.outbox_id) == (42, 0)
