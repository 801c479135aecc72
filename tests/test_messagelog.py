"""flowsvc's logs as a customer talks to it: one JSON line per handled message at debug level,
every number masked, and nothing the customer wrote."""

from __future__ import annotations

import logging

import grpc
import pytest

from menuflow.logs import mask_message_id
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import BUSINESS, Chat
from tests.logcapture import captured_logs

pytestmark = pytest.mark.usefixtures("seeded")

CUSTOMERS = ("4915112345678", "16505550199")
SAID = [
    "hello there, zebra crossing",  # no keyword: the default menu
    "quantity in words: seventeen",  # not a number at the quantity step
    'line one\nline two {"level": "error", "event": "forged"}',
    "my other number is 4917998877665",
]


def test_a_conversation_logs_one_masked_line_per_message_and_never_the_text(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    with captured_logs(debug=["flowsvc.messages"]) as logs:
        for number in CUSTOMERS:
            chat = Chat(stub, number, contact_name="Jane Q. Customer")
            chat.say(SAID[0])
            chat.tap("new_order", "New Order")
            chat.tap("coffee", "Coffee")
            for text in SAID[1:]:
                chat.say(text)
            chat.say("2")
            again = chat.send(chat.message(message_id=chat.last.messages[0].source_id, text="2"))
            assert again.duplicate
            chat.tap("pickup", "Pickup")
            chat.tap("yes", "Yes")
        with pytest.raises(grpc.RpcError):
            Chat(stub, CUSTOMERS[0]).say("x" * 4097)

    events = logs.events  # every line is one JSON object
    assert len(events) == len(logs.text.split("\n")) - 1
    for number in (*CUSTOMERS, "4917998877665", BUSINESS):
        assert number not in logs.text
    for text in (*SAID, "Jane Q. Customer", "x" * 100):
        assert text not in logs.text and text.split("\n")[0] not in logs.text
    handled = logs.named("message handled")
    per_customer = 1 + 2 + len(SAID[1:]) + 1 + 1 + 1 + 1
    assert len(handled) == per_customer * len(CUSTOMERS)
    assert {e["customer"] for e in handled} == {"***5678", "***0199"}
    assert sum(e["duplicate"] for e in handled) == len(CUSTOMERS)
    assert {e["outcome"] for e in handled} >= {"started", "advanced", "invalid_input", "completed"}
    assert all(e["level"] == "debug" and e["elapsed_ms"] >= 0 for e in handled)
    assert all(e["message_id"].startswith("id#") for e in handled)  # hashed: wamids hold numbers
    refused = logs.named("message refused")
    assert len(refused) == 1
    assert refused[0]["level"] == "warning" and refused[0]["error"] == "InvalidArgument"
    assert refused[0]["customer"] == "***5678" and "message.text" in refused[0]["reason"]


@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING])
def test_above_debug_level_a_handled_message_writes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub, level: int
) -> None:
    with captured_logs(level) as logs:
        Chat(stub).say("hi")
    assert logs.named("message handled") == []


def test_a_batch_logs_each_message_as_handle_message_does(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chats = [Chat(stub, number) for number in CUSTOMERS]
    messages = [chat.message(text=SAID[0]) for chat in chats]
    messages.append(chats[0].message(text="x" * 4097))  # longer than WhatsApp allows

    with captured_logs(debug=["flowsvc.messages"]) as logs:
        stub.HandleMessages(flow_pb2.HandleMessagesRequest(messages=messages))

    handled = logs.named("message handled")
    assert [e["message_id"] for e in handled] == [
        mask_message_id(m.message_id) for m in messages[:2]
    ]
    assert {e["customer"] for e in handled} == {"***5678", "***0199"}
    [refused] = logs.named("message refused")
    assert refused["message_id"] == mask_message_id(messages[2].message_id)
    assert refused["level"] == "warning"
    for text in (*CUSTOMERS, SAID[0], "x" * 100):
        assert text not in logs.text
