"""HandleMessages (the gateway's batched path) over a real gRPC server and database: each message
gets what HandleMessage would have answered, in one transaction; a refused message fails alone."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import struct_pb2
from google.rpc import code_pb2, error_details_pb2
from sqlalchemy import bindparam, text

from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat, text_of
from tests.database import helper_engine, row_counts
from tests.servers import running_flowsvc

pytestmark = pytest.mark.usefixtures("seeded")
CAP = 2048  # FLOWSVC_MAX_CONTEXT_BYTES of this module's flowsvc


@pytest.fixture
def stub(settings: Settings) -> Iterator[flow_pb2_grpc.FlowServiceStub]:
    with (
        running_flowsvc(dataclasses.replace(settings, max_context_bytes=CAP)) as server,
        grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel,
    ):
        yield flow_pb2_grpc.FlowServiceStub(channel)


def handle(
    stub: flow_pb2_grpc.FlowServiceStub, *messages: flow_pb2.InboundMessage, **request: object
) -> list[flow_pb2.HandleMessagesResult]:
    response = stub.HandleMessages(flow_pb2.HandleMessagesRequest(messages=messages, **request))
    return list(response.results)


def texts(result: flow_pb2.HandleMessagesResult) -> list[str]:
    return [text_of(json.loads(m.body_json)) for m in result.handled.messages]


def test_each_customer_gets_the_reply_handle_message_would_give(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chats = [Chat(stub, phone_number=f"1650555000{n}") for n in range(3)]
    alone = Chat(stub, phone_number="16505559999")
    alone.say("hi")

    results = handle(stub, *(chat.message(text="hi") for chat in chats), lease_owner="gw-1")

    assert [r.WhichOneof("result") for r in results] == ["handled"] * 3
    for chat, result in zip(chats, results, strict=True):
        assert result.handled.outcome == flow_pb2.OUTCOME_STARTED
        assert not result.handled.duplicate
        assert texts(result) == alone.texts
        bodies = [json.loads(m.body_json) for m in result.handled.messages]
        assert {body["to"] for body in bodies} == {chat.phone_number}
        assert {m.lease_owner for m in result.handled.messages} == {"gw-1"}
        assert result.handled.conversation.current_step == alone.last.conversation.current_step
    # Committed: each customer goes on from there.
    assert chats[1].tap("new_order").outcome == flow_pb2.OUTCOME_ADVANCED


def test_one_customers_messages_in_one_call_are_handled_in_order(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    hi = chat.message(text="hi")
    tap = chat.message(selection=flow_pb2.Selection(id="new_order"))

    first, second, again = handle(stub, hi, tap, hi)

    assert first.handled.outcome == flow_pb2.OUTCOME_STARTED
    assert second.handled.outcome == flow_pb2.OUTCOME_ADVANCED
    assert second.handled.conversation.flow == "new_order"
    assert again.handled.duplicate
    assert [m.id for m in again.handled.messages] == [m.id for m in first.handled.messages]
    outbox = len(first.handled.messages) + len(second.handled.messages)
    assert row_counts(database_url)["outbox"] == outbox


def test_a_refused_message_fails_alone_and_changes_nothing_of_its_own(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    before, after = Chat(stub, phone_number="4917000001"), Chat(stub, phone_number="4917000003")
    full = Chat(stub, phone_number="4917000002")
    context = struct_pb2.Struct()
    context.update({"notes": "x" * (CAP - 40)})  # fits; one more selection does not
    full.say("hi")
    full.stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=full.customer, template_name="main_menu", context=context
        )
    )
    invalid = flow_pb2.InboundMessage(customer=before.customer, text="hi")  # no message id

    results = handle(
        stub,
        before.message(text="hi"),
        invalid,
        full.message(selection=flow_pb2.Selection(id="new_order")),
        after.message(text="hi"),
    )

    assert [r.WhichOneof("result") for r in results] == ["handled", "error", "error", "handled"]
    refused = results[1].error
    assert refused.code == code_pb2.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    assert refused.details[0].Unpack(detail)
    assert [v.field for v in detail.field_violations] == ["message.message_id"]
    assert results[2].error.code == code_pb2.RESOURCE_EXHAUSTED
    assert str(CAP) in results[2].error.message
    kept = stub.GetConversation(flow_pb2.GetConversationRequest(customer=full.customer))
    assert kept.conversation.flow == "main_menu"
    for chat in (before, after):
        found = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
        assert found.conversation.flow == "main_menu"
    replies = len(results[0].handled.messages) + len(results[3].handled.messages)
    # ... and full's "hi" reply and first menu
    assert row_counts(database_url)["outbox"] == replies + 2


def test_no_messages_is_no_results(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    assert handle(stub) == []


def test_more_than_100_messages_in_one_call_is_invalid_argument(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    with pytest.raises(grpc.RpcError) as caught:
        handle(stub, *(chat.message(text="hi") for _ in range(101)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 100" in caught.value.details()
    assert row_counts(database_url)["outbox"] == 0


def test_ids_with_quotes_backslashes_and_braces_are_stored_as_they_are(
    stub: flow_pb2_grpc.FlowServiceStub, settings: Settings
) -> None:
    """The batch's arrays go to PostgreSQL as array literals (store.prepared): every character
    of an id is kept, and redelivered ids are recognised."""
    ids = ['a"b', "c\\d", "{e,f}", "NULL", " g ", "h\\\"i'j", "k\nl"]
    chats = [Chat(stub, phone_number=f"1650555100{n}") for n in range(len(ids))]
    messages = [chat.message(message_id=i, text="hi") for chat, i in zip(chats, ids, strict=True)]

    first = handle(stub, *messages, lease_owner="gw-1")
    # One at a time (each id a parameter of its own): found as the batch stored it.
    again = [chat.send(message) for chat, message in zip(chats, messages, strict=True)]

    assert [r.handled.outcome for r in first] == [flow_pb2.OUTCOME_STARTED] * len(ids)
    assert not any(r.handled.duplicate for r in first)
    assert [r.duplicate for r in again] == [True] * len(ids)
    assert [{m.source_id for m in r.messages} for r in again] == [{i} for i in ids]
    customers = {"numbers": [chat.phone_number for chat in chats]}
    with helper_engine(settings.database_url).connect() as connection:
        for table, column in (("processed_messages", "message_id"), ("outbox", "source_id")):
            stored = connection.execute(
                text(
                    f"SELECT DISTINCT {column} FROM {table} WHERE phone_number IN :numbers"
                ).bindparams(bindparam("numbers", expanding=True)),
                customers,
            )
            found = sorted(stored.scalars())
            assert found == sorted(ids), table
    assert [[m.id for m in r.messages] for r in again] == [
        [m.id for m in r.handled.messages] for r in first
    ]
