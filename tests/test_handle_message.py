"""HandleMessage's guarantees over a real gRPC server and database: exactly once, one customer at
a time, bad input refused with nothing changed, expiry, and the other conversation RPCs."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import struct_pb2

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute, row_counts

# An expiry an hour ago: past, and well within the notice horizon (FLOWSVC_EXPIRY_NOTICE_DAYS).
RECENTLY = datetime.now(UTC) - timedelta(hours=1)

pytestmark = pytest.mark.usefixtures("seeded")


def test_the_same_message_five_times_concurrently_gets_one_reply_set(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    message = chat.message(text="hi")

    with ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(lambda _: chat.send(message), range(5)))

    ids = {tuple(m.id for m in r.messages) for r in responses}
    assert len(ids) == 1 and ids != {()}
    assert {r.outcome for r in responses} == {flow_pb2.OUTCOME_STARTED}
    assert sorted(r.duplicate for r in responses) == [False, True, True, True, True]
    assert row_counts(database_url)["outbox"] == len(responses[0].messages)


def test_a_redelivery_later_returns_the_stored_outcome_and_nothing_new(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    first = chat.say("hi")
    chat.tap("new_order")
    before = row_counts(database_url)

    again = chat.send(chat.message(message_id=first.messages[0].source_id, text="hi"))

    assert again.duplicate and again.outcome == first.outcome
    assert [m.id for m in again.messages] == [m.id for m in first.messages]
    assert again.conversation.flow == "new_order"  # the conversation as it is now
    assert row_counts(database_url) == before


@pytest.mark.parametrize(
    ("message", "field"),
    [
        pytest.param(
            flow_pb2.InboundMessage(
                customer=flow_pb2.Customer(phone_number_id="1", phone_number="2"), text="hi"
            ),
            "message.message_id",
            id="no-message-id",
        ),
        pytest.param(
            flow_pb2.InboundMessage(message_id="wamid.x", text="hi"),
            "message.customer.phone_number",
            id="no-customer",
        ),
        pytest.param(
            flow_pb2.InboundMessage(
                message_id="wamid.x",
                customer=flow_pb2.Customer(phone_number_id="1", phone_number="+1 (650) 555"),
                text="hi",
            ),
            "message.customer.phone_number",
            id="not-a-wa-id",
        ),
        pytest.param(
            flow_pb2.InboundMessage(
                message_id="wamid.x",
                customer=flow_pb2.Customer(phone_number_id="1", phone_number="2"),
            ),
            "message.content",
            id="no-content",
        ),
        pytest.param(
            flow_pb2.InboundMessage(
                message_id="wamid.x",
                customer=flow_pb2.Customer(phone_number_id="1", phone_number="2"),
                text="x" * 4097,
            ),
            "message.text",
            id="text-over-4096",
        ),
    ],
)
def test_bad_messages_are_invalid_argument_and_change_nothing(
    stub: flow_pb2_grpc.FlowServiceStub,
    database_url: str,
    message: flow_pb2.InboundMessage,
    field: str,
) -> None:
    before = row_counts(database_url)

    with pytest.raises(grpc.RpcError) as caught:
        stub.HandleMessage(flow_pb2.HandleMessageRequest(message=message))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()
    assert row_counts(database_url) == before


def test_a_context_past_its_cap_is_resource_exhausted_and_changes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")  # within the customer service window: only the context is at fault
    context = struct_pb2.Struct()
    context.update({"notes": "x" * 17_000})
    before = row_counts(database_url)

    with pytest.raises(grpc.RpcError) as caught:
        stub.StartConversation(
            flow_pb2.StartConversationRequest(
                customer=chat.customer, template_name="new_order", context=context
            )
        )

    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert row_counts(database_url) == before


@pytest.mark.parametrize(
    ("template", "code"),
    [
        pytest.param("nope", grpc.StatusCode.NOT_FOUND, id="unknown"),
        pytest.param("", grpc.StatusCode.INVALID_ARGUMENT, id="missing"),
    ],
)
def test_start_refuses_an_unknown_template(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str, template: str, code: grpc.StatusCode
) -> None:
    before = row_counts(database_url)
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartConversation(
            flow_pb2.StartConversationRequest(customer=Chat(stub).customer, template_name=template)
        )
    assert caught.value.code() == code
    assert row_counts(database_url) == before


def test_start_refuses_an_inactive_template(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=flow_pb2.TemplateDefinition(name="account", is_active=False),
            update_mask={"paths": ["is_active"]},
        )
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartConversation(
            flow_pb2.StartConversationRequest(customer=Chat(stub).customer, template_name="account")
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_start_with_a_request_id_is_idempotent(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    chat = Chat(stub)
    chat.say("hi")
    request = flow_pb2.StartConversationRequest(
        customer=chat.customer, template_name="new_order", request_id="campaign-7"
    )
    first, second = stub.StartConversation(request), stub.StartConversation(request)
    assert [m.id for m in first.messages] == [m.id for m in second.messages]
    assert first.conversation.flow == "new_order"


def test_get_list_and_end_conversations(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    alice, bob = Chat(stub, "15550000001"), Chat(stub, "15550000002")
    alice.say("hi")
    bob.say("hi")
    bob.tap("new_order")

    got = stub.GetConversation(flow_pb2.GetConversationRequest(customer=bob.customer))
    in_order = stub.ListConversations(flow_pb2.ListConversationsRequest(flow="new_order"))
    everyone = stub.ListConversations(flow_pb2.ListConversationsRequest(page_size=1))
    ended = stub.EndConversation(flow_pb2.EndConversationRequest(customer=bob.customer))

    assert got.conversation.flow == "new_order"
    assert got.conversation.context["previous_selection"] == "new_order"
    assert [c.customer.phone_number for c in in_order.conversations] == ["15550000002"]
    assert len(everyone.conversations) == 1 and everyone.next_page_token
    assert ended.conversation.flow == "new_order"
    for call in (stub.GetConversation, stub.EndConversation):
        request_type = (
            flow_pb2.GetConversationRequest
            if call is stub.GetConversation
            else flow_pb2.EndConversationRequest
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(request_type(customer=bob.customer))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_expired_conversation_tells_the_customer_and_starts_over(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    execute(database_url, "UPDATE conversation_state SET expires_at = '2020-01-01 00:00:00'")

    chat.tap("coffee", "Coffee")

    assert chat.last.outcome == flow_pb2.OUTCOME_EXPIRED
    assert "expired" in chat.texts[0]
    assert chat.last.conversation.flow == "main_menu"


def test_a_customer_whose_expired_conversation_was_swept_still_hears_why(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    execute(database_url, "UPDATE conversation_state SET expires_at = :t", t=RECENTLY)
    assert stub.SweepExpired(flow_pb2.SweepExpiredRequest()).expired_conversations == 1

    chat.tap("coffee", "Coffee")
    told = (chat.last.outcome, chat.texts)
    chat.say("cancel")
    chat.say("hi")

    assert told[0] == flow_pb2.OUTCOME_EXPIRED
    assert "expired" in told[1][0] and len(told[1]) == 2  # the notice, then the main menu
    assert chat.last.outcome == flow_pb2.OUTCOME_STARTED  # told once, not again
    assert not any("expired" in text for text in chat.texts)


def test_an_expiry_older_than_the_notice_horizon_is_not_mentioned(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    execute(database_url, "UPDATE conversation_state SET expires_at = '2020-01-01 00:00:00'")
    stub.SweepExpired(flow_pb2.SweepExpiredRequest())

    chat.say("hi")

    assert chat.last.outcome == flow_pb2.OUTCOME_STARTED
    assert not any("expired" in text for text in chat.texts)


def test_a_reaction_is_recorded_once_and_answered_by_nothing(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    before = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    reaction = chat.message(unsupported_type="reaction")

    first = chat.send(reaction)
    again = chat.send(reaction)

    assert (first.outcome, list(first.messages), first.duplicate) == (
        flow_pb2.OUTCOME_IGNORED,
        [],
        False,
    )
    assert again.duplicate and again.outcome == flow_pb2.OUTCOME_IGNORED
    after = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    assert after.conversation == before.conversation


def test_sweep_deletes_expired_conversations_and_says_how_many(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    for number in ("15550000001", "15550000002", "15550000003"):
        Chat(stub, number).say("hi")
    execute(
        database_url,
        "UPDATE conversation_state SET expires_at = '2020-01-01 00:00:00' "
        "WHERE phone_number <> '15550000003'",
    )

    swept = stub.SweepExpired(flow_pb2.SweepExpiredRequest())

    assert swept.expired_conversations == 2
    assert row_counts(database_url)["conversation_state"] == 1
    assert stub.SweepExpired(flow_pb2.SweepExpiredRequest()).expired_conversations == 0


def test_sweep_deletes_dedupe_records_past_their_retention(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    execute(
        database_url,
        "UPDATE processed_messages SET processed_at = '2020-01-01 00:00:00' WHERE message_id = :id",
        id=chat.last.messages[0].source_id,
    )

    swept = stub.SweepExpired(flow_pb2.SweepExpiredRequest())

    assert swept.processed_messages == 1
    assert row_counts(database_url)["processed_messages"] == 1


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_a_message_on_connections_the_database_dropped_is_still_handled_once(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")  # leaves flowsvc's pooled connections recently used: not pinged before reuse
    execute(
        database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )

    response = chat.tap("new_order")

    assert response.outcome == flow_pb2.OUTCOME_ADVANCED and not response.duplicate
    assert row_counts(database_url)["processed_messages"] == 2
