"""The tracker each send carries (biz_opaque_callback_data) and reading it back from statuses."""

from __future__ import annotations

import json

import pytest

from gateway import tracker
from gateway.payload import parse
from tests.graph_standin import Received, status_webhook, validate


@pytest.mark.parametrize(
    "body",
    [
        '{"messaging_product":"whatsapp","to":"491700000001","type":"text","text":{"body":"}"}}',
        '{ "messaging_product": "whatsapp", "to": "491700000001", "type": "text",'
        ' "text": {"body": "hi"} }\n',
    ],
    ids=["compact", "spaced"],
)
def test_the_tracker_is_added_to_the_body_as_meta_documents_it(body: str) -> None:
    sent = json.loads(tracker.tracked(body, 42))

    assert sent == json.loads(body) | {"biz_opaque_callback_data": "menuflow:outbox:42"}
    assert validate(sent) == "message"


@pytest.mark.parametrize(
    ("data", "outbox_id"),
    [
        ("menuflow:outbox:42", 42),
        ("", 0),
        ("someone-else:42", 0),
        ("menuflow:outbox:", 0),
        ("menuflow:outbox:-1", 0),
        ("menuflow:outbox:4２", 0),
        ("menuflow:outbox:" + "9" * 30, 0),
    ],
    ids=["ours", "none", "another-system", "no-id", "negative", "non-ascii", "too-long"],
)
def test_only_our_trackers_name_an_outbox_id(data: str, outbox_id: int) -> None:
    assert tracker.outbox_id(data) == outbox_id


def test_a_status_webhook_carries_the_tracker_to_flowsvc() -> None:
    record = Received(0.0, "106540352242922", {"to": "491700000001"}, "message")
    record.status, record.wa_message_id = 200, "wamid.X"
    record.callback_data = tracker.callback_data(7)

    (status,) = parse(status_webhook(record)).statuses

    assert (status.wa_message_id, status.outbox_id, status.recipient_id) == (
        "wamid.X",
        7,
        "491700000001",
    )
