"""SendMessage and business-initiated starts over gRPC: free-form messages within Meta's 24-hour
customer service window (from the customer's own message times), message templates outside it,
queued in the customer's outbox lane behind the bot's replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import row_counts
from tests.steering import bodies, create_pay_order, order_ready, struct, wrote_hours_ago

pytestmark = pytest.mark.usefixtures("seeded")

BUTTONS = {
    "type": "button",
    "body": {"text": "Your {product_title} is ready. Pick it up?"},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
}


def send(chat: Chat, **fields: object) -> flow_pb2.SendMessageResponse:
    request = flow_pb2.SendMessageRequest(customer=chat.customer, **fields)  # type: ignore[arg-type]
    return chat.stub.SendMessage(request)  # type: ignore[no-any-return]


def refused(chat: Chat, **fields: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        send(chat, **fields)
    return caught.value


def test_a_text_goes_behind_the_bots_replies_and_leaves_the_conversation_alone(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    replies = chat.say("hi").messages
    before = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))

    sent = send(chat, text="Your order is ready 🎉")

    assert sent.message.id > max(m.id for m in replies)
    assert bodies([sent.message]) == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": chat.phone_number,
            "type": "text",
            "text": {"preview_url": False, "body": "Your order is ready 🎉"},
        }
    ]
    claimed = stub.ClaimOutbox(flow_pb2.ClaimOutboxRequest(owner="pump"))
    assert [m.id for m in claimed.messages] == [*(m.id for m in replies), sent.message.id]
    after = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    assert after == before  # not even its revision moved


def test_an_interactive_message_with_placeholders_from_the_conversation(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order", "🛒 New Order")
    chat.tap("coffee", "Coffee")

    sent = send(chat, interactive=struct(BUTTONS))

    assert bodies([sent.message])[0]["interactive"] == {
        "type": "button",
        "body": {"text": "Your Coffee is ready. Pick it up?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
    }


@pytest.mark.parametrize(
    ("fields", "violations"),
    [
        pytest.param({}, ["content"], id="nothing"),
        pytest.param({"text": ""}, ["text"], id="empty-text"),
        pytest.param({"text": "x" * 4097}, ["text"], id="long-text"),
        pytest.param(
            {"interactive": struct({**BUTTONS, "action": {"buttons": []}, "steps": {}})},
            ["interactive.action.buttons", "interactive.steps"],
            id="bad-interactive",
        ),
        pytest.param(
            {
                "template": flow_pb2.MessageTemplate(
                    name="order_ready",
                    language="en_US",
                    header=[
                        flow_pb2.TemplateParameter(text="a"),
                        flow_pb2.TemplateParameter(text="b"),
                    ],
                    body=[flow_pb2.TemplateParameter(text="two\nlines")],
                    buttons=[flow_pb2.TemplateButton(index=12, quick_reply_payload="")],
                )
            },
            [
                "template.header",
                "template.body[0].text",
                "template.buttons[0].index",
                "template.buttons[0].quick_reply_payload",
            ],
            id="bad-template",
        ),
    ],
)
def test_a_bad_message_lists_every_problem_and_changes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub,
    database_url: str,
    fields: dict[str, object],
    violations: list[str],
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    before = row_counts(database_url)

    error = refused(chat, **fields)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    rpc_status.from_call(error).details[0].Unpack(detail)
    assert [v.field for v in detail.field_violations] == violations
    assert row_counts(database_url) == before


def test_outside_the_window_free_form_is_refused_and_a_template_goes_instead(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    wrote_hours_ago(chat, 25)  # delivered now, written a day ago: the window is closed
    before = row_counts(database_url)

    error = refused(chat, text="Your order is ready")
    sent = send(chat, text="Your order is ready", template=order_ready())

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "customer service window" in error.details() and "131047" in error.details()
    assert row_counts(database_url)["outbox"] == before["outbox"] + 1
    assert bodies([sent.message]) == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": chat.phone_number,
            "type": "template",
            "template": {
                "name": "order_ready",
                "language": {"policy": "deterministic", "code": "en_US"},
                "components": [
                    {"type": "body", "parameters": [{"type": "text", "text": "K7M4Q2"}]}
                ],
            },
        }
    ]


def test_a_customer_who_never_wrote_gets_only_templates(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub, "15550006666")
    assert refused(chat, text="hello").code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "has never written" in refused(chat, text="hello").details()
    assert bodies([send(chat, template=order_ready()).message])[0]["type"] == "template"


def test_within_the_window_free_form_wins_and_a_template_alone_is_sent_as_it_is(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    wrote_hours_ago(chat, 23)
    assert bodies([send(chat, text="hi", template=order_ready()).message])[0]["type"] == "text"
    assert bodies([send(chat, template=order_ready()).message])[0]["type"] == "template"


def test_an_old_redelivery_does_not_move_the_window_back(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")  # now
    wrote_hours_ago(chat, 30, text="an old message, delivered late")
    assert bodies([send(chat, text="still open").message])[0]["type"] == "text"


def test_a_request_id_sends_once(stub: flow_pb2_grpc.FlowServiceStub, database_url: str) -> None:
    chat = Chat(stub)
    chat.say("hi")
    first = send(chat, text="ready", request_id="ready-1")
    second = send(chat, text="ready", request_id="ready-1")
    assert second.message.id == first.message.id
    assert row_counts(database_url)["outbox"] == 2  # the menu and one "ready"


def test_a_business_initiated_start_sends_the_template_and_a_quick_reply_leads_on(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    create_pay_order(stub)
    chat = Chat(stub, "15550005555")
    request = flow_pb2.StartConversationRequest(
        customer=chat.customer,
        template_name="pay_order",
        context=struct({"item": "Cake", "total": "12.50"}),
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartConversation(request)
    request.template.CopyFrom(order_ready(payload="ready"))
    request.ttl.CopyFrom(duration_pb2.Duration(seconds=3 * 24 * 3600))

    started = stub.StartConversation(request)
    answered = chat.tap("ready", "Pay now")  # the template's quick reply comes back as a tap

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [b["type"] for b in bodies(started.messages)] == ["template"]
    expires = started.conversation.expire_time.ToDatetime(UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=3))) < timedelta(minutes=1)
    assert answered.conversation.current_step == "awaiting_payment"
    assert chat.texts == [
        "We sent you a payment link for $12.50. We'll confirm here as soon as it is paid."
    ]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        pytest.param({"initial_step": "nope"}, grpc.StatusCode.FAILED_PRECONDITION, id="step"),
        pytest.param(
            {"ttl": duration_pb2.Duration(seconds=31 * 24 * 3600)},
            grpc.StatusCode.INVALID_ARGUMENT,
            id="ttl",
        ),
    ],
)
def test_a_start_refuses_an_unknown_step_and_a_bad_ttl(
    stub: flow_pb2_grpc.FlowServiceStub, fields: dict[str, object], code: grpc.StatusCode
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    with pytest.raises(grpc.RpcError) as caught:
        stub.StartConversation(
            flow_pb2.StartConversationRequest(
                customer=chat.customer,
                template_name="new_order",
                **fields,  # type: ignore[arg-type]
            )
        )
    assert caught.value.code() == code


def test_a_start_in_a_step_of_its_choosing(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    create_pay_order(stub)
    chat = Chat(stub)
    chat.say("hi")
    started = stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat.customer,
            template_name="pay_order",
            initial_step="awaiting_payment",
            context=struct({"item": "Tea", "total": 3}),
        )
    )
    assert started.conversation.current_step == "awaiting_payment"
    assert "$3.00" in bodies(started.messages)[0]["interactive"]["body"]["text"]
