"""Hostile values through FlowService over gRPC: SQL and format-string fragments, control
characters, huge and exact-limit texts, right-to-left text, huge numbers, corrupt and deeply
nested requests. Each is stored and echoed back exactly, or refused with INVALID_ARGUMENT and
nothing changed; the logs stay one JSON line per event and never hold the text."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import row_counts
from tests.logcapture import captured_logs

pytestmark = pytest.mark.usefixtures("seeded")

ECHO = {
    "name": "echo",
    "trigger_keywords": ["echo test"],
    "is_active": True,
    "menu_structure": {
        "type": "text",
        "body": {"text": "Say anything."},
        "steps": {
            "initial": {"context_key": "said", "next_step": "echoed"},
            "echoed": {"prompt": "{contact_name}, you said: {said}", "end_conversation": True},
        },
    },
}
HOSTILE = {
    "sql-drop-table": "'; DROP TABLE outbox; --",
    "sql-tautology": "1' OR '1'='1",
    "sql-stacked": 'x"); DELETE FROM conversation_state; --',
    "format-attribute": "{0.__class__}",
    "format-subclasses": "{0.__class__.__mro__[1].__subclasses__()}",
    "percent-format": "%s %d %n %(said)s",
    "builtin-placeholder": "{contact_name}",
    "own-placeholder": "{said}",
    "money-placeholder": "{total:money}",
    "double-braces": "{{said}}",
    "template-languages": "{{ 7*7 }} ${7*7} #{7*7} <%= 7*7 %>",
    "log-injection": 'ok\n{"level": "error", "event": "forged"}',
    "crlf": "first\r\nsecond",
    "control-characters": "bell\x07 esc\x1b[31m red\x1b[0m tab\t del\x7f",
    "nul": "before\x00after",
    "unicode-line-breaks": "a\u2028b\u2029c\x85d",
    "rtl-override": "\u202eexe.txt\u202c",
    "arabic": "مرحبا، أريد قهوة",
    "hebrew": "שלום עולם",
    "emoji-sequences": "👩‍👩‍👧‍👦 🇺🇦 🏳️‍🌈",
    "combining-marks": "Z̷̢͉a̸l̷g̵o̴",
    "html": "<script>alert(1)</script>",
    "json": '{"said": "overwritten", "__proto__": {"admin": true}}',
    "exactly-4096": "x" * 4096,
    "emoji-4096": "😀" * 4096,
}
_numbers = itertools.count(1)


def new_customer(stub: flow_pb2_grpc.FlowServiceStub, **fields: Any) -> Chat:
    return Chat(stub, f"1555{next(_numbers):07d}", **fields)


@pytest.fixture
def echo(stub: flow_pb2_grpc.FlowServiceStub) -> flow_pb2_grpc.FlowServiceStub:
    template = flow_pb2.TemplateDefinition(
        name=ECHO["name"], trigger_keywords=ECHO["trigger_keywords"], is_active=True
    )
    template.menu_structure.update(ECHO["menu_structure"])
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=template))
    return stub


def as_stored(text: str) -> str:
    """What flowsvc keeps of a typed text: its first 1000 characters (EngineConfig's
    max_input_chars) without surrounding spaces, and U+FFFD for NUL, which PostgreSQL can hold
    neither in text nor in JSONB (on every database, so both behave the same)."""
    return text.replace("\x00", "\ufffd")[:1000].strip()


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_text_is_stored_and_echoed_exactly(
    echo: flow_pb2_grpc.FlowServiceStub, text: str
) -> None:
    chat = new_customer(echo, contact_name="Ana")
    with captured_logs(debug=["flowsvc.messages"]) as logs:
        chat.say("echo test")
        chat.say(text)

    said = as_stored(text)
    assert chat.last is not None and chat.last.outcome == flow_pb2.OUTCOME_COMPLETED
    echoed = f"Ana, you said: {said}"
    if len(echoed) > 4096:  # WhatsApp's limit for a text body: cut, and the cut marked
        echoed = echoed[:4095] + "…"
    assert chat.texts == [echoed]
    results = echo.ListResults(flow_pb2.ListResultsRequest(customer=chat.customer)).results
    assert [r.context["said"] for r in results] == [said]
    events = logs.events  # each line parses: one JSON object per line
    assert len(events) == logs.text.count("\n") == len(logs.text.splitlines())
    assert [e["event"] for e in events] == ["message handled", "message handled"]
    assert said not in logs.text and json.dumps(said)[1:-1] not in logs.text


@pytest.mark.parametrize("name", list(HOSTILE)[:12] + ["rtl-override", "emoji-sequences"])
def test_a_hostile_contact_name_is_echoed_exactly(
    echo: flow_pb2_grpc.FlowServiceStub, name: str
) -> None:
    chat = new_customer(echo, contact_name=HOSTILE[name])
    chat.say("echo test")
    chat.say("hello")
    assert chat.texts == [f"{HOSTILE[name].strip()}, you said: hello"]


@pytest.mark.parametrize(
    "text",
    [pytest.param(" ", id="space"), pytest.param("\n\t\r ", id="whitespace")],
)
def test_a_text_of_nothing_but_whitespace_is_asked_again(
    echo: flow_pb2_grpc.FlowServiceStub, text: str
) -> None:
    chat = new_customer(echo)
    chat.say("echo test")
    chat.say(text)
    assert chat.last is not None and chat.last.outcome == flow_pb2.OUTCOME_INVALID_INPUT
    assert chat.last.conversation.current_step == "initial"


@pytest.mark.parametrize(
    ("text", "accepted"),
    [
        pytest.param("9" * 500, False, id="500-nines"),
        pytest.param("9" * 16, False, id="16-digits"),
        pytest.param("9" * 15, False, id="15-digits-over-max"),
        pytest.param("-" + "9" * 500, False, id="huge-negative"),
        pytest.param("1e999", False, id="exponent"),
        pytest.param("NaN", False, id="nan"),
        pytest.param("Infinity", False, id="infinity"),
        pytest.param("0", False, id="zero"),
        pytest.param("-1", False, id="negative"),
        pytest.param("2.5", False, id="fraction"),
        pytest.param("0x10", False, id="hex"),
        pytest.param("1_0", False, id="underscore"),
        pytest.param("2; DROP TABLE flow_results", False, id="sql-after-number"),
        pytest.param("{quantity}", False, id="placeholder"),
        pytest.param(" 2\n", True, id="padded"),
        pytest.param("٢", True, id="arabic-indic-digit"),
        pytest.param("99", True, id="max"),
    ],
)
def test_numbers_at_the_quantity_step(
    stub: flow_pb2_grpc.FlowServiceStub, text: str, accepted: bool
) -> None:
    chat = new_customer(stub)
    chat.say("hi")
    chat.tap("new_order", "New Order")
    chat.tap("coffee", "Coffee")

    chat.say(text)

    assert chat.last is not None
    if accepted:
        assert chat.last.outcome == flow_pb2.OUTCOME_ADVANCED
        assert chat.last.conversation.current_step == "fulfilment"
    else:
        assert chat.last.outcome == flow_pb2.OUTCOME_INVALID_INPUT
        assert chat.texts == ["Please send a whole number from 1 to 99."]
        assert chat.last.conversation.current_step == "quantity"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param({"text": "x" * 65_536}, "message.text", id="64KiB-text"),
        pytest.param({"text": "x" * 4097}, "message.text", id="4097-chars"),
        pytest.param({"text": "😀" * 4097}, "message.text", id="4097-emoji"),
        pytest.param({"message_id": "'; DROP" + "x" * 250}, "message.message_id", id="long-id"),
    ],
)
def test_oversized_input_is_invalid_argument_and_changes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub,
    database_url: str,
    content: dict[str, str],
    field: str,
) -> None:
    chat = new_customer(stub)
    chat.say("hi")
    before = row_counts(database_url)
    with captured_logs() as logs, pytest.raises(grpc.RpcError) as caught:
        chat.send(chat.message(**({"text": "hi"} | content)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()
    assert row_counts(database_url) == before
    assert [e["event"] for e in logs.events] == ["message refused"]


@pytest.mark.parametrize(
    ("message_id", "selection"),
    [
        pytest.param("'; DROP TABLE processed_messages; --", "new_order", id="sql-message-id"),
        pytest.param('wamid.\n{"forged": 1}', "new_order", id="newline-message-id"),
        pytest.param(None, "'; DROP TABLE outbox; --", id="sql-selection"),
        pytest.param(None, "{0.__class__}", id="format-selection"),
        pytest.param(None, "x" * 10_000, id="long-selection"),
    ],
)
def test_hostile_ids_are_just_ids(
    stub: flow_pb2_grpc.FlowServiceStub, message_id: str | None, selection: str
) -> None:
    chat = new_customer(stub)
    chat.say("hi")
    with captured_logs(debug=["flowsvc.messages"]) as logs:
        chat.send(
            chat.message(message_id, selection=flow_pb2.Selection(id=selection, title=selection))
        )
        again = (
            chat.send(chat.message(message_id, selection=flow_pb2.Selection(id=selection)))
            if message_id
            else None
        )

    assert chat.last is not None
    expected = (
        flow_pb2.OUTCOME_ADVANCED if selection == "new_order" else flow_pb2.OUTCOME_STALE_SELECTION
    )
    assert (again or chat.last).outcome == expected
    if again is not None:
        assert again.duplicate
    assert all(e["event"] == "message handled" for e in logs.events)
    if selection != "new_order":
        assert selection not in logs.text


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": "{0.__class__}"}
    for _ in range(depth):
        value = {"n": value, "list": [1, "'; DROP TABLE outbox; --"]}
    return value


def test_a_nested_context_is_stored_and_given_back_exactly(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = new_customer(stub)
    context = {
        "deep": nested(15),
        "'; DROP TABLE conversation_state; --": "{contact_name}",
        "big": 1e308,
        "tiny": -1e-308,
        "rtl": "\u202eabc",
    }
    struct = struct_pb2.Struct()
    struct.update(context)
    chat.say("hi")

    stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat.customer, template_name="new_order", context=struct
        )
    )
    got = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))

    assert got.conversation.context == struct


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def deep_struct(depth: int) -> bytes:
    """A Struct nested `depth` times, written by hand: protobuf refuses to build one so deep."""
    struct = b""
    for _ in range(depth):
        value = _field(5, struct)  # Value.struct_value
        struct = _field(1, _field(1, b"n") + _field(2, value))  # Struct.fields entry "n"
    return struct


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(
            lambda chat: (
                _field(1, chat.customer.SerializeToString())
                + _field(2, b"new_order")
                + _field(3, deep_struct(2_000))
            ),
            id="context-nested-2000-deep",
        ),
        pytest.param(
            lambda chat: (
                _field(1, chat.customer.SerializeToString()) + _field(2, b"new_\xff\xfeorder")
            ),
            id="invalid-utf8",
        ),
        pytest.param(lambda chat: b"\xff\xff\xff\xff", id="corrupt-bytes"),
    ],
)
def test_a_request_that_does_not_parse_is_invalid_argument_and_changes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub, flowsvc_target: str, database_url: str, request_bytes: Any
) -> None:
    chat = new_customer(stub)
    before = row_counts(database_url)
    with grpc.insecure_channel(flowsvc_target) as channel:
        start = channel.unary_unary(
            "/menuflow.v1.FlowService/StartConversation",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.RpcError) as caught:
            start(request_bytes(chat), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert row_counts(database_url) == before


def test_nul_in_a_context_or_a_template_arrives_as_a_replacement_character(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = new_customer(stub)
    context = struct_pb2.Struct()
    context.update({"key\x00": "value\x00", "list": ["\x00"]})
    template = flow_pb2.TemplateDefinition(name="nul", trigger_keywords=["nul\x00 test"])
    template.menu_structure.update(
        {
            "type": "text",
            "body": {"text": "body\x00"},
            "steps": {"initial": {"end_conversation": True}},
        }
    )
    chat.say("hi")

    stub.StartConversation(
        flow_pb2.StartConversationRequest(
            customer=chat.customer, template_name="new_order", context=context
        )
    )
    got = stub.GetConversation(flow_pb2.GetConversationRequest(customer=chat.customer))
    created = stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=template)).template

    assert got.conversation.context["key\ufffd"] == "value\ufffd"
    assert list(got.conversation.context["list"]) == ["\ufffd"]
    assert created.menu_structure["body"]["text"] == "body\ufffd"
    assert list(created.trigger_keywords) == ["nul\ufffd test"]


LISTS = {
    # name: (call, the kind of cursor it pages by)
    "ListTemplates": (
        lambda stub, token: stub.ListTemplates(flow_pb2.ListTemplatesRequest(page_token=token)),
        str,
    ),
    "ListTemplateVersions": (
        lambda stub, token: stub.ListTemplateVersions(
            flow_pb2.ListTemplateVersionsRequest(name="main_menu", page_token=token)
        ),
        int,
    ),
    "ListConversations": (
        lambda stub, token: stub.ListConversations(
            flow_pb2.ListConversationsRequest(page_token=token)
        ),
        int,
    ),
    "ListResults": (
        lambda stub, token: stub.ListResults(flow_pb2.ListResultsRequest(page_token=token)),
        int,
    ),
}


@pytest.mark.parametrize(
    ("name", "cursor"),
    [
        pytest.param(name, cursor, id=f"{name}-{cursor!r}")
        for name, (_, kind) in LISTS.items()
        for cursor in ("abc", 7, 1.5, True, None, [1], {"id": 1})
        if type(cursor) is not kind
    ],
)
def test_a_page_token_of_the_wrong_kind_is_invalid_argument(
    stub: flow_pb2_grpc.FlowServiceStub, name: str, cursor: object
) -> None:
    """A token that decodes, but not to the cursor the list pages by, is not one we gave out."""
    call, _ = LISTS[name]
    token = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode()
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, token)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert "page_token" in caught.value.details()


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (flow_pb2.ClaimOutboxRequest(owner="g", max_messages=-1), "max_messages"),
        (flow_pb2.ClaimOutboxRequest(owner="g", lease_seconds=-5), "lease_seconds"),
    ],
    ids=["negative-max-messages", "negative-lease"],
)
def test_a_negative_claim_is_invalid_argument(
    stub: flow_pb2_grpc.FlowServiceStub, request_: flow_pb2.ClaimOutboxRequest, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ClaimOutbox(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()


def _with_non_finite(value: float) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update({"order": {"items": [1, value]}})
    return struct


NON_FINITE = {"nan": float("nan"), "infinity": float("inf"), "minus-infinity": float("-inf")}


@pytest.mark.parametrize("value", NON_FINITE.values(), ids=NON_FINITE.keys())
def test_nan_or_infinity_in_a_struct_is_invalid_argument_naming_the_field(
    stub: flow_pb2_grpc.FlowServiceStub, value: float
) -> None:
    customer = new_customer(stub).customer
    template = flow_pb2.TemplateDefinition(name="non_finite", trigger_keywords=["x"])
    template.menu_structure.CopyFrom(_with_non_finite(value))
    calls = {
        "template.menu_structure": lambda: stub.CreateTemplate(
            flow_pb2.CreateTemplateRequest(template=template)
        ),
        "context": lambda: stub.StartConversation(
            flow_pb2.StartConversationRequest(
                customer=customer, template_name="main_menu", context=_with_non_finite(value)
            )
        ),
        "interactive": lambda: stub.SendMessage(
            flow_pb2.SendMessageRequest(customer=customer, interactive=_with_non_finite(value))
        ),
    }
    for field, call in calls.items():
        with pytest.raises(grpc.RpcError) as caught:
            call()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert field in caught.value.details()


def _leased(stub: flow_pb2_grpc.FlowServiceStub, count: int) -> list[int]:
    for _ in range(count):
        new_customer(stub).say("hi")
    claimed = stub.ClaimOutbox(flow_pb2.ClaimOutboxRequest(owner="g", lease_seconds=60)).messages
    return sorted(m.id for m in claimed)


def test_an_ack_with_a_meta_id_the_outbox_cannot_hold_records_it_and_acks_the_rest(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    ids = _leased(stub, 4)
    assert len(ids) == 4
    first = flow_pb2.AckOutboxRequest(
        owner="g", acks=[flow_pb2.OutboxAck(id=ids[0], sent_wa_message_id="wamid.taken")]
    )
    assert list(stub.AckOutbox(first).lease_lost_ids) == []
    acks = [
        flow_pb2.OutboxAck(id=ids[1], sent_wa_message_id="wamid." + "A" * 300),  # too long
        flow_pb2.OutboxAck(id=ids[2], sent_wa_message_id="wamid.taken"),  # already recorded
        flow_pb2.OutboxAck(id=ids[3], sent_wa_message_id="wamid.fine"),
    ]
    answer = stub.AckOutbox(flow_pb2.AckOutboxRequest(owner="g", acks=acks))

    assert list(answer.lease_lost_ids) == []
    # Every one is settled as sent: nothing is claimed (and sent) again.
    claim = flow_pb2.ClaimOutboxRequest(owner="h", lease_seconds=60)
    assert list(stub.ClaimOutbox(claim).messages) == []
    for wa_id in ("wamid.taken", "wamid.fine"):
        status = flow_pb2.RecordStatusRequest(
            wa_message_id=wa_id, status=flow_pb2.DELIVERY_STATUS_DELIVERED
        )
        assert stub.RecordStatus(status).matched
