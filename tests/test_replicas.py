"""Several flowsvc processes on one PostgreSQL: one customer's messages are handled one at a time
and exactly once, whichever replica receives them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import row_counts
from tests.servers import flowsvc_process

pytestmark = pytest.mark.skipif(
    not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL (TEST_DATABASE_URL)"
)

COUNTER = {
    "type": "text",
    "body": {"text": "Counting."},
    "steps": {
        "initial": {
            "context_key": "last",
            "compute": {"count": "count + 1"},
            "next_step": "initial",
        }
    },
}


def test_fifty_concurrent_messages_to_two_replicas_are_handled_one_at_a_time(
    database_url: str, tmp_path: Path
) -> None:
    with (
        flowsvc_process(database_url, tmp_path / "a.log") as first,
        flowsvc_process(database_url, tmp_path / "b.log") as second,
        grpc.insecure_channel(first.address) as channel_a,
        grpc.insecure_channel(second.address) as channel_b,
    ):
        stubs = [flow_pb2_grpc.FlowServiceStub(channel_a), flow_pb2_grpc.FlowServiceStub(channel_b)]
        menu, context = struct_pb2.Struct(), struct_pb2.Struct()
        menu.update(COUNTER)
        context.update({"count": 0})
        stubs[0].CreateTemplate(
            flow_pb2.CreateTemplateRequest(
                template=flow_pb2.TemplateDefinition(name="counter", menu_structure=menu)
            )
        )
        chat = Chat(stubs[0])
        chat.say("hi")
        stubs[0].StartConversation(
            flow_pb2.StartConversationRequest(
                customer=chat.customer, template_name="counter", context=context
            )
        )
        messages = [chat.message(text=f"message {n}") for n in range(50)]

        def send(index: int) -> flow_pb2.HandleMessageResponse:
            return stubs[index % 2].HandleMessage(
                flow_pb2.HandleMessageRequest(message=messages[index])
            )

        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(send, range(50)))
        final = stubs[1].GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))

    counts = sorted(int(r.conversation.context["count"]) for r in responses)
    assert counts == list(range(1, 51))  # each saw the state the previous one left: a serial order
    assert int(final.conversation.context["count"]) == 50
    assert not any(r.duplicate for r in responses)
    assert row_counts(database_url)["processed_messages"] == 50 + 1  # and the "hi" before
