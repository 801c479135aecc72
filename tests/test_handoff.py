"""Handing a customer to people over gRPC: a template step or HandOff pauses the conversation,
the customer's messages reach the event log with their content and no bot reply, agents answer
through SendMessage, and Resume (or idling) gives the customer back to the bot."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from flowsvc.server import Server
from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.servers import running_flowsvc
from tests.steering import bodies, order_ready, struct, wrote_hours_ago

pytestmark = pytest.mark.usefixtures("seeded")


def events(stub: flow_pb2_grpc.FlowServiceStub, *types: int) -> list[flow_pb2.Event]:
    found: list[flow_pb2.Event] = []
    token = ""
    while True:
        page = stub.ListEvents(
            flow_pb2.ListEventsRequest(
                filter=flow_pb2.EventFilter(types=list(types)), page_token=token, page_size=500
            )
        )
        found += page.events
        token = page.next_page_token
        if not token:
            return found


def to_a_person(chat: Chat) -> flow_pb2.HandleMessageResponse:
    """The support template's "Talk to a person" path."""
    chat.say("support")
    chat.tap("contact", "📞 Contact Us")
    return chat.tap("person", "Talk to a person")


def hand_off(chat: Chat, **fields: Any) -> flow_pb2.HandOffResponse:
    request = flow_pb2.HandOffRequest(customer=chat.customer, **fields)
    return chat.stub.HandOff(request)  # type: ignore[no-any-return]


def resume(chat: Chat, **fields: Any) -> flow_pb2.ResumeResponse:
    request = flow_pb2.ResumeRequest(customer=chat.customer, **fields)
    return chat.stub.Resume(request)  # type: ignore[no-any-return]


def refused(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_a_template_step_hands_off_with_its_message_and_a_transcript(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    handed = to_a_person(chat)

    assert [b["text"]["body"] for b in chat.bodies][0].startswith("🙋 A member of our team")
    assert handed.conversation.current_step == "person"
    assert handed.conversation.handoff.queue == "support"
    requested = events(stub, flow_pb2.EVENT_TYPE_HANDOFF_REQUESTED)
    assert len(requested) == 1
    payload = requested[0].handoff_requested
    assert (payload.queue, payload.step, payload.from_template) == ("support", "person", True)
    assert payload.reason == "asked for a person (Contact Us)"
    said = [(e.direction, e.text) for e in payload.transcript]
    assert said[0] == ("inbound", "support")
    assert ("inbound", "contact") in said
    assert ("inbound", "person") in said
    assert said[-1][0] == "outbound" and said[-1][1].startswith("🙋 A member")
    listed = stub.ListConversations(flow_pb2.ListConversationsRequest(handed_off=True))
    assert [c.customer.phone_number for c in listed.conversations] == [chat.phone_number]
    assert not stub.ListConversations(
        flow_pb2.ListConversationsRequest(queue="billing")
    ).conversations


def test_while_handed_off_the_customer_gets_no_bot_reply_and_agents_see_each_message_once(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    to_a_person(chat)
    before = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))

    text = chat.message(text="My coffee was cold")
    tap = chat.message(selection=flow_pb2.Selection(id="new_order", title="🛒 New Order"))
    image = chat.message(
        media=flow_pb2.InboundMedia(
            type="image", id="1479537139650973", mime_type="image/jpeg", caption="the cup"
        )
    )
    for message in (text, tap, image, text, image):  # redeliveries too
        handled = chat.send(message)
        assert handled.outcome == flow_pb2.OUTCOME_HANDED_OFF
        assert not handled.messages

    written = events(stub, flow_pb2.EVENT_TYPE_CUSTOMER_MESSAGE)
    assert [e.customer_message.message_id for e in written] == [
        text.message_id,
        tap.message_id,
        image.message_id,
    ]
    assert written[0].customer_message.text == "My coffee was cold"
    assert written[1].customer_message.selection.id == "new_order"
    media = written[2].customer_message.media
    assert (media.type, media.id, media.caption) == ("image", "1479537139650973", "the cup")
    assert all(e.customer_message.queue == "support" for e in written)
    after = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    assert (after.conversation.current_step, after.conversation.revision) == (
        before.conversation.current_step,
        before.conversation.revision,
    )
    assert not stub.ClaimOutbox(flow_pb2.ClaimOutboxRequest(owner="pump")).messages[4:]


def test_agents_reply_in_order_and_resume_to_a_step_which_is_sent(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    to_a_person(chat)
    chat.say("Where is my order?")

    first = stub.SendMessage(
        flow_pb2.SendMessageRequest(customer=chat.customer, text="Hi, Ana here.", agent="Ana")
    )
    second = stub.SendMessage(
        flow_pb2.SendMessageRequest(customer=chat.customer, text="It left 5 min ago.", agent="Ana")
    )
    assert second.message.id > first.message.id
    queued = events(stub, flow_pb2.EVENT_TYPE_MESSAGE_QUEUED)
    assert [e.message_queued.agent for e in queued[-2:]] == ["Ana", "Ana"]

    back = resume(chat, step="faq", text="Back to the bot 🤖", context=struct({"agent": "Ana"}))

    assert back.conversation.current_step == "faq"
    assert not back.conversation.HasField("handoff")
    assert back.conversation.context["agent"] == "Ana"
    sent = bodies(back.messages)
    assert sent[0]["text"]["body"] == "Back to the bot 🤖"
    assert sent[1]["interactive"]["type"] == "list"
    resumed = events(stub, flow_pb2.EVENT_TYPE_HANDOFF_RESUMED)
    assert [(e.handoff_resumed.reason, e.handoff_resumed.step) for e in resumed] == [
        ("Resume", "faq")
    ]
    answered = chat.tap("hours", "Opening hours")
    assert answered.conversation.current_step == "faq_hours"
    assert answered.messages


def test_hand_off_by_rpc_keeps_the_conversation_and_a_second_one_is_no_second_handoff(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    until = timestamp_pb2.Timestamp()
    until.FromDatetime(datetime.now(UTC) + timedelta(days=2))

    handed = hand_off(
        chat, reason="VIP", queue="billing", priority=5, until=until, text="One moment"
    )
    again = hand_off(chat, reason="again", queue="sales")

    assert handed.conversation.current_step == "initial"
    assert handed.conversation.handoff.queue == "billing"
    assert handed.conversation.handoff.resume_time.ToDatetime(UTC) >= until.ToDatetime(UTC)
    assert not handed.already_handed_off
    assert bodies(handed.messages)[0]["text"]["body"] == "One moment"
    assert again.already_handed_off and not again.messages
    assert again.conversation.handoff.queue == "billing"
    requested = events(stub, flow_pb2.EVENT_TYPE_HANDOFF_REQUESTED)
    assert len(requested) == 1
    payload = requested[0].handoff_requested
    assert (payload.reason, payload.queue, payload.priority) == ("VIP", "billing", 5)
    assert [t.direction for t in payload.transcript] == ["inbound", "outbound", "outbound"]
    assert payload.transcript[0].text == "hi"


def test_resume_to_the_end_and_the_failures(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    chat = Chat(stub)
    stranger = Chat(stub, phone_number="16505550000")
    assert refused(lambda: hand_off(stranger)).code() == grpc.StatusCode.NOT_FOUND
    assert refused(lambda: resume(stranger)).code() == grpc.StatusCode.NOT_FOUND
    chat.say("hi")
    not_paused = refused(lambda: resume(chat, step="initial"))
    assert not_paused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not handed off" in (not_paused.details() or "")
    handed = hand_off(chat)
    stale = refused(lambda: resume(chat, expected_revision=handed.conversation.revision + 7))
    assert stale.code() == grpc.StatusCode.ABORTED
    nowhere = refused(lambda: resume(chat, step="nowhere"))
    assert nowhere.code() == grpc.StatusCode.FAILED_PRECONDITION
    bad = refused(lambda: resume(chat, end=True, step="initial"))
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT

    ended = resume(chat, end=True, text="Bye!", expected_revision=handed.conversation.revision)

    assert not ended.HasField("conversation")
    assert bodies(ended.messages)[0]["text"]["body"] == "Bye!"
    assert refused(lambda: resume(chat)).code() == grpc.StatusCode.NOT_FOUND


def test_an_agents_reply_outside_the_window_needs_a_template(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    wrote_hours_ago(chat, 1, text="hi")
    hand_off(chat)
    wrote_hours_ago(chat, 30, text="old message, delivered late")  # no later than that hour

    chat_after = Chat(stub, phone_number="16505559876")
    wrote_hours_ago(chat_after, 30, text="hi")
    stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat_after.customer, template_name="main_menu", template=order_ready()
        )
    )
    hand_off(chat_after)
    closed = refused(
        lambda: stub.SendMessage(
            flow_pb2.SendMessageRequest(customer=chat_after.customer, text="Hello", agent="Ana")
        )
    )
    assert closed.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "24-hour" in (closed.details() or "") and "handed off" in (closed.details() or "")
    with_template = stub.SendMessage(
        flow_pb2.SendMessageRequest(
            customer=chat_after.customer, text="Hello", template=order_ready(), agent="Ana"
        )
    )
    assert bodies([with_template.message])[0]["type"] == "template"


@pytest.fixture
def idle_flowsvc(database_url: str) -> Iterator[Server]:
    settings = Settings(
        database_url=database_url,
        listen="127.0.0.1:0",
        grace_seconds=1,
        sweep_interval_seconds=0,
        handoff_idle=timedelta(seconds=0.2),
        handoff_leave_words=frozenset({"bot"}),
    )
    with running_flowsvc(settings) as server:
        yield server


@pytest.fixture
def idle_stub(idle_flowsvc: Server) -> Iterator[flow_pb2_grpc.FlowServiceStub]:
    with grpc.insecure_channel(f"127.0.0.1:{idle_flowsvc.port}") as channel:
        yield flow_pb2_grpc.FlowServiceStub(channel)


def test_an_idle_handoff_resumes_on_its_own_with_the_message(
    idle_stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(idle_stub)
    to_a_person(chat)

    def swept() -> list[flow_pb2.Event]:
        idle_stub.SweepExpired(flow_pb2.SweepExpiredRequest())
        return events(idle_stub, flow_pb2.EVENT_TYPE_HANDOFF_RESUMED)

    from tests.gateway_harness import wait_until

    resumed = wait_until(swept)
    assert [(e.handoff_resumed.reason, e.handoff_resumed.step) for e in resumed] == [
        ("idle", "initial")
    ]
    found = idle_stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    assert found.conversation.flow == "main_menu"
    assert not found.conversation.HasField("handoff")
    queued = idle_stub.ClaimOutbox(flow_pb2.ClaimOutboxRequest(owner="pump")).messages
    texts = [json.loads(m.body_json) for m in queued][-2:]
    assert texts[0]["text"]["body"] == (
        "Our team will get back to you; meanwhile, here is the menu."
    )
    assert texts[1]["type"] == "interactive"


def test_the_customer_leaves_the_queue_with_the_leave_word(
    idle_stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(idle_stub)
    chat.say("hi")
    hand_off(chat)
    assert chat.say("still there?").outcome == flow_pb2.OUTCOME_HANDED_OFF

    left = chat.say("Bot")

    assert left.outcome != flow_pb2.OUTCOME_HANDED_OFF
    assert left.messages
    assert not left.conversation.HasField("handoff")
    resumed = events(idle_stub, flow_pb2.EVENT_TYPE_HANDOFF_RESUMED)
    assert [e.handoff_resumed.reason for e in resumed] == ["customer"]


def test_a_spanish_customer_leaves_the_queue_with_a_spanish_leave_word(
    idle_stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    spanish, english = Chat(idle_stub, phone_number="34600111222"), Chat(idle_stub)
    idle_stub.SetLanguage(flow_pb2.SetLanguageRequest(customer=spanish.customer, language="es"))
    for chat in (spanish, english):
        chat.say("hi")
        hand_off(chat)

    stays = english.say("inicio")  # a Spanish word: an English speaker's message for the agent
    left = spanish.say("Inicio")

    assert stays.outcome == flow_pb2.OUTCOME_HANDED_OFF and not stays.messages
    assert left.outcome != flow_pb2.OUTCOME_HANDED_OFF and left.messages
    assert not left.conversation.HasField("handoff")


def test_two_agents_resuming_at_once_get_one_success_and_one_aborted(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    read = hand_off(chat).conversation.revision
    outcomes: list[str] = []

    def agent(step: str) -> None:
        try:
            resume(chat, step=step, expected_revision=read)
            outcomes.append("ok")
        except grpc.RpcError as error:
            outcomes.append(error.code().name)

    threads = [threading.Thread(target=agent, args=(step,)) for step in ("initial", "initial")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["ABORTED", "ok"]
    assert len(events(stub, flow_pb2.EVENT_TYPE_HANDOFF_RESUMED)) == 1


TOKENS = {"admin": "admin-token-1", "client": "client-token-2", "gateway": "gateway-token-3"}


@pytest.fixture
def guarded(settings: Settings) -> Iterator[Server]:
    roles = {"auth_token": TOKENS["admin"], "tokens": tuple(list(TOKENS.items())[1:])}
    with running_flowsvc(replace(settings, **roles)) as server:  # type: ignore[arg-type]
        yield server


@pytest.mark.parametrize(
    ("role", "allowed"), [("client", True), ("admin", True), ("gateway", False)]
)
def test_a_client_or_admin_token_hands_off_and_resumes_a_gateway_token_cannot(
    guarded: Server, role: str, allowed: bool
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        token = (("authorization", f"Bearer {TOKENS[role]}"),)
        admin = (("authorization", f"Bearer {TOKENS['admin']}"),)
        stub = flow_pb2_grpc.FlowServiceStub(channel)
        chat = Chat(stub, phone_number=f"1650555{len(role):04d}")
        stub.HandleMessage(
            flow_pb2.HandleMessageRequest(message=chat.message(text="hi")), metadata=admin
        )
        calls = [
            lambda: stub.HandOff(flow_pb2.HandOffRequest(customer=chat.customer), metadata=token),
            lambda: stub.Resume(flow_pb2.ResumeRequest(customer=chat.customer), metadata=token),
        ]
        for call in calls:
            if allowed:
                call()
            else:
                assert refused(call).code() == grpc.StatusCode.PERMISSION_DENIED


DESK = {
    "type": "button",
    "body": {"text": "Our help desk."},
    "action": {"buttons": [{"type": "reply", "reply": {"id": "person", "title": "A person"}}]},
    "steps": {
        "initial": {"next_steps": {"person": "person"}, "set": {"desk": "the help desk"}},
        "person": {
            "prompt": "Connecting you.",
            "handoff": {"queue": "desk", "priority": 3, "resume_message": "Sorry, {desk} is busy."},
        },
    },
}


def test_an_idle_handoff_says_its_templates_resume_message(
    idle_stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    idle_stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=flow_pb2.TemplateDefinition(
                name="desk", trigger_keywords=["desk"], menu_structure=struct(DESK)
            )
        )
    )
    chat = Chat(idle_stub)
    chat.say("desk")
    handed = chat.tap("person", "A person")
    assert handed.conversation.handoff.priority == 3
    from tests.gateway_harness import wait_until

    def swept() -> list[flow_pb2.Event]:
        idle_stub.SweepExpired(flow_pb2.SweepExpiredRequest())
        return events(idle_stub, flow_pb2.EVENT_TYPE_HANDOFF_RESUMED)

    wait_until(swept)
    queued = idle_stub.ClaimOutbox(flow_pb2.ClaimOutboxRequest(owner="pump")).messages
    said = [json.loads(m.body_json) for m in queued]
    assert said[-2]["text"]["body"] == "Sorry, the help desk is busy."
