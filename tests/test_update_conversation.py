"""UpdateConversation over gRPC: merge context, move to a step, guarded by a revision, sending
the step's messages within the customer service window or a message template outside it."""

from __future__ import annotations

import grpc
import pytest

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute, row_counts
from tests.steering import bodies, create_pay_order, order_ready, struct

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture
def chat(stub: flow_pb2_grpc.FlowServiceStub) -> Chat:
    """A customer waiting for their payment in the pay_order flow."""
    create_pay_order(stub)
    chat = Chat(stub)
    chat.say("hi")
    stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat.customer,
            template_name="pay_order",
            context=struct({"item": "2 x Coffee", "total": "7.00"}),
        )
    )
    chat.tap("pay", "💳 Pay")
    return chat


def update(chat: Chat, **fields: object) -> flow_pb2.UpdateConversationResponse:
    request = flow_pb2.UpdateConversationRequest(customer=chat.customer, **fields)  # type: ignore[arg-type]
    return chat.stub.UpdateConversation(request)  # type: ignore[no-any-return]


def conversation(chat: Chat) -> flow_pb2.Conversation:
    found = chat.stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    return found.conversation  # type: ignore[no-any-return]


def refused(chat: Chat, **fields: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        update(chat, **fields)
    return caught.value


def test_the_payment_service_marks_it_paid_and_the_customer_gets_the_confirmation(
    chat: Chat,
) -> None:
    waiting = conversation(chat)
    assert waiting.current_step == "awaiting_payment"

    done = update(
        chat,
        context=struct({"paid": True}),
        step="paid",
        expected_revision=waiting.revision,
        send_step_messages=True,
    )

    assert not done.HasField("conversation")  # the flow completed
    assert bodies(done.messages)[0]["text"]["body"] == (
        f"✅ Payment received: 2 x Coffee is confirmed. Your order number is "
        f"{done.result_reference}."
    )
    result = chat.stub.GetResult(flow_pb2.GetResultRequest(reference=done.result_reference))
    assert result.result.context["paid"] is True
    assert result.result.context["item"] == "2 x Coffee"


def test_context_alone_is_merged_and_nothing_is_sent(chat: Chat) -> None:
    before = conversation(chat)

    after = update(chat, context=struct({"paid": False, "note": "card declined"}))

    assert after.conversation.current_step == "awaiting_payment"
    assert dict(after.conversation.context) == {
        **dict(before.context),
        "paid": False,
        "note": "card declined",
    }
    assert after.conversation.revision > before.revision
    assert conversation(chat).revision == after.conversation.revision
    assert list(after.messages) == []
    assert after.conversation.last_interaction_time == before.last_interaction_time


def test_moving_sends_the_steps_messages_and_back_returns(chat: Chat) -> None:
    moved = update(chat, step="initial", send_step_messages=True)

    assert moved.conversation.current_step == "initial"
    assert bodies(moved.messages)[0]["interactive"]["body"]["text"] == (
        "🧾 2 x Coffee: $7.00. Shall I send you a payment link?"
    )
    chat.say("back")
    assert conversation(chat).current_step == "awaiting_payment"


def test_switching_flow_starts_its_initial_step_keeping_the_context(chat: Chat) -> None:
    moved = update(chat, flow="support", send_step_messages=True)

    assert (moved.conversation.flow, moved.conversation.current_step) == ("support", "initial")
    assert moved.conversation.context["item"] == "2 x Coffee"
    assert moved.messages


def test_a_stale_revision_is_aborted_and_changes_nothing(chat: Chat, database_url: str) -> None:
    read = conversation(chat)
    chat.tap("cancel_order", "❌ Cancel")  # the customer acted meanwhile: the flow ended
    chat.say("hi")
    chat.stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat.customer, template_name="pay_order", context=struct({"item": "Tea"})
        )
    )
    chat.tap("pay", "💳 Pay")  # back in awaiting_payment, in a new conversation
    again = conversation(chat)
    assert again.current_step == read.current_step
    before = row_counts(database_url)

    error = refused(chat, step="paid", expected_revision=read.revision, send_step_messages=True)

    assert again.revision != read.revision  # revisions never repeat, across conversations too
    assert error.code() == grpc.StatusCode.ABORTED
    assert f"not {read.revision}" in error.details()
    assert row_counts(database_url) == before
    assert conversation(chat) == again


@pytest.mark.parametrize(
    ("fields", "code", "says"),
    [
        pytest.param(
            {"step": "shipped"},
            grpc.StatusCode.FAILED_PRECONDITION,
            "has no step 'shipped'; its steps: initial, awaiting_payment, cancelled, paid",
            id="unknown-step",
        ),
        pytest.param({"flow": "nope"}, grpc.StatusCode.NOT_FOUND, "'nope'", id="unknown-flow"),
        pytest.param(
            {"flow": "support", "step": "nope"},
            grpc.StatusCode.FAILED_PRECONDITION,
            "template 'support'",
            id="unknown-step-of-flow",
        ),
        pytest.param(
            {"context": struct({"big": "x" * 17_000})},
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "past the limit",
            id="context-too-big",
        ),
        pytest.param({}, grpc.StatusCode.INVALID_ARGUMENT, "say what to do", id="nothing"),
        pytest.param(
            {"step": "paid", "expected_revision": -1},
            grpc.StatusCode.INVALID_ARGUMENT,
            "expected_revision",
            id="negative-revision",
        ),
        pytest.param(
            {"step": "paid", "template": flow_pb2.MessageTemplate(name="Order Ready")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "template.language",
            id="bad-template",
        ),
    ],
)
def test_a_refused_update_says_why_and_changes_nothing(
    chat: Chat, database_url: str, fields: dict[str, object], code: grpc.StatusCode, says: str
) -> None:
    before, counts = conversation(chat), row_counts(database_url)

    error = refused(chat, **fields)

    assert error.code() == code
    assert says in error.details()
    assert conversation(chat) == before
    assert row_counts(database_url) == counts


def test_an_inactive_flow_is_a_failed_precondition(chat: Chat) -> None:
    chat.stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=flow_pb2.TemplateDefinition(name="support", is_active=False),
            update_mask={"paths": ["is_active"]},
        )
    )
    assert refused(chat, flow="support").code() == grpc.StatusCode.FAILED_PRECONDITION


def test_without_a_conversation_it_is_not_found(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    nobody = Chat(stub, "15550004444")
    assert refused(nobody, step="paid").code() == grpc.StatusCode.NOT_FOUND


def test_an_expired_conversation_is_not_found(chat: Chat, database_url: str) -> None:
    execute(database_url, "UPDATE conversation_state SET expires_at = '2020-01-01 00:00:00'")
    assert refused(chat, context=struct({"paid": True})).code() == grpc.StatusCode.NOT_FOUND


def test_outside_the_window_a_send_needs_a_template(chat: Chat, database_url: str) -> None:
    execute(database_url, "UPDATE customers SET last_inbound_at = '2020-01-01 00:00:00'")
    counts = row_counts(database_url)

    error = refused(chat, step="awaiting_payment", send_step_messages=True)

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "24-hour customer service window" in error.details()
    assert "last wrote at 2020-01-01T00:00:00+00:00" in error.details()
    assert row_counts(database_url) == counts
    # A context change sends nothing, so the window does not matter to it.
    assert update(chat, context=struct({"paid": False})).conversation.context["paid"] is False
    sent = update(
        chat, step="initial", send_step_messages=True, template=order_ready(payload="ready")
    )
    assert bodies(sent.messages)[0]["type"] == "template"
    assert sent.conversation.current_step == "initial"


def test_a_request_id_makes_a_retry_return_the_first_answer(chat: Chat) -> None:
    waiting = conversation(chat)
    fields = {
        "step": "paid",
        "expected_revision": waiting.revision,
        "send_step_messages": True,
        "request_id": "payment-77",
    }
    first, second = update(chat, **fields), update(chat, **fields)

    assert [m.id for m in second.messages] == [m.id for m in first.messages]
    assert len(first.messages) == 1
