"""The outbox over gRPC: leases that never overlap, acks, retries in order, delivery statuses."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from flowsvc.service.send_slots import SendSlots
from flowsvc.store.db import create_db_engine, create_sessionmaker
from flowsvc.store.times import sqlite_time
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import execute

pytestmark = pytest.mark.usefixtures("seeded")


def claim(
    stub: flow_pb2_grpc.FlowServiceStub, owner: str, lease_seconds: int = 60
) -> list[flow_pb2.OutboxMessage]:
    return list(
        stub.ClaimOutbox(
            flow_pb2.ClaimOutboxRequest(owner=owner, lease_seconds=lease_seconds)
        ).messages
    )


def ack(stub: flow_pb2_grpc.FlowServiceStub, owner: str, *acks: flow_pb2.OutboxAck) -> list[int]:
    return list(stub.AckOutbox(flow_pb2.AckOutboxRequest(owner=owner, acks=acks)).lease_lost_ids)


def test_handle_message_leases_its_replies_to_the_caller(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    response = Chat(stub).say("hi", lease_owner="gateway-a")

    assert response.messages and {m.lease_owner for m in response.messages} == {"gateway-a"}
    assert claim(stub, "gateway-b") == []


def test_replies_queue_behind_a_customers_unsent_messages(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    chat.say("hi", lease_owner="gateway-a")

    second = chat.tap("new_order")
    chat.send(chat.message(selection=flow_pb2.Selection(id="coffee")), lease_owner="gateway-b")

    assert {m.lease_owner for m in second.messages} == {""}
    assert {m.lease_owner for m in chat.last.messages} == {""}  # gateway-a still sends earlier ones


def test_a_quick_follow_up_is_leased_to_the_sender_already_holding_the_earlier_replies(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    first = chat.say("hi", lease_owner="gateway-a")

    follow_up = chat.send(
        chat.message(selection=flow_pb2.Selection(id="new_order")), lease_owner="gateway-a"
    )

    assert {m.lease_owner for m in first.messages} == {"gateway-a"}
    assert {m.lease_owner for m in follow_up.messages} == {"gateway-a"}
    assert claim(stub, "gateway-b") == []


def sent(*messages: flow_pb2.OutboxMessage) -> list[flow_pb2.OutboxAck]:
    return [flow_pb2.OutboxAck(id=m.id, sent_wa_message_id=f"wamid.{m.id}") for m in messages]


def crossed(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> tuple[flow_pb2.HandleMessageResponse, flow_pb2.HandleMessageResponse]:
    """A customer's first replies, held by gateway-a, and those of their next message, which
    reached gateway-b meanwhile (so they wait, leased to nobody)."""
    chat = Chat(stub)
    first = chat.say("hi", lease_owner="gateway-a")
    second = chat.send(
        chat.message(selection=flow_pb2.Selection(id="new_order")), lease_owner="gateway-b"
    )
    return first, second


def test_the_ack_of_a_customers_reply_leases_on_what_another_sender_queued_behind_it(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    first, second = crossed(stub)
    assert {m.lease_owner for m in second.messages} == {""}

    response = stub.AckOutbox(
        flow_pb2.AckOutboxRequest(
            owner="gateway-a", acks=sent(*first.messages), lease_next_seconds=60
        )
    )

    assert [m.id for m in response.messages] == [m.id for m in second.messages]
    assert {m.lease_owner for m in response.messages} == {"gateway-a"}
    assert all(m.HasField("lease_expire_time") for m in response.messages)
    assert claim(stub, "gateway-b") == []  # leased once: no claim gets them too


def test_an_acks_retry_hands_over_the_lane_its_lost_answer_leased_on(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    first, second = crossed(stub)
    request = flow_pb2.AckOutboxRequest(
        owner="gateway-a", acks=sent(*first.messages), lease_next_seconds=60
    )
    stub.AckOutbox(request)  # its answer never reached gateway-a

    again = stub.AckOutbox(request)

    assert [m.id for m in again.messages] == [m.id for m in second.messages]
    assert {m.lease_owner for m in again.messages} == {"gateway-a"}


def test_an_ack_leases_nothing_on_unless_asked(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    first, second = crossed(stub)

    response = stub.AckOutbox(
        flow_pb2.AckOutboxRequest(owner="gateway-a", acks=sent(*first.messages))
    )

    assert list(response.messages) == []
    assert [m.id for m in claim(stub, "gateway-b")] == [m.id for m in second.messages]


def test_an_ack_that_retries_a_customers_message_leases_none_of_the_later_ones(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    chat = Chat(stub)
    first = chat.say("hi", lease_owner="gateway-a")
    # A quick follow-up: its replies are gateway-a's too, behind the first ones.
    follow_up = chat.send(
        chat.message(selection=flow_pb2.Selection(id="new_order")), lease_owner="gateway-a"
    )
    # The next message reached gateway-b: its replies wait, leased to nobody.
    chat.send(chat.message(selection=flow_pb2.Selection(id="coffee")), lease_owner="gateway-b")
    retry = [
        flow_pb2.OutboxAck(id=m.id, retry=flow_pb2.RetryLater(delay_seconds=3600))
        for m in follow_up.messages
    ]

    response = stub.AckOutbox(
        flow_pb2.AckOutboxRequest(
            owner="gateway-a", acks=[*sent(*first.messages), *retry], lease_next_seconds=60
        )
    )

    # Nothing may overtake the replies waiting for their retry.
    assert list(response.messages) == []


def test_concurrent_claims_never_get_the_same_message(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    for number in range(15550000100, 15550000140):
        Chat(stub, str(number)).say("hi")

    with ThreadPoolExecutor(4) as pool:
        claims = list(pool.map(lambda owner: claim(stub, owner), ["a", "b", "c", "d"]))

    ids = [m.id for messages in claims for m in messages]
    assert len(ids) == len(set(ids)) == 40
    for messages in claims:  # a customer's messages all go to one sender
        owners_by_customer = {}
        for message in messages:
            owners_by_customer.setdefault(message.customer.phone_number, set()).add(
                message.lease_owner
            )
        assert all(len(owners) == 1 for owners in owners_by_customer.values())


def test_an_expired_lease_is_claimed_again(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    response = Chat(stub).say("hi", lease_owner="gateway-a")
    assert claim(stub, "gateway-b") == []

    execute(database_url, "UPDATE outbox SET lease_expires_at = '2020-01-01 00:00:00'")
    reclaimed = claim(stub, "gateway-b")

    assert [m.id for m in reclaimed] == [m.id for m in response.messages]
    assert ack(
        stub, "gateway-a", flow_pb2.OutboxAck(id=reclaimed[0].id, sent_wa_message_id="wamid.A")
    ) == [reclaimed[0].id]


def test_sent_messages_are_never_claimed_again(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    Chat(stub).say("hi")
    messages = claim(stub, "gateway-a")

    lost = ack(
        stub,
        "gateway-a",
        *[flow_pb2.OutboxAck(id=m.id, sent_wa_message_id=f"wamid.{m.id}") for m in messages],
    )

    assert lost == []
    assert claim(stub, "gateway-a") == []


def test_a_retry_holds_the_customers_later_messages_back(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    chat.say("hi")
    chat.tap("new_order")
    first, *rest = claim(stub, "gateway-a")
    assert rest

    ack(
        stub,
        "gateway-a",
        flow_pb2.OutboxAck(
            id=first.id,
            retry=flow_pb2.RetryLater(
                delay_seconds=3600, error=flow_pb2.MetaError(code=131056, title="pair rate limit")
            ),
        ),
        *[flow_pb2.OutboxAck(id=m.id, released=True) for m in rest],
    )
    later = chat.say("menu", lease_owner="gateway-a")
    assert {m.lease_owner for m in later.messages} == {""}  # queued behind the retry, not sent now
    other = Chat(stub, "15550000777")
    other.say("hi")

    claimed = claim(stub, "gateway-b")
    assert {m.customer.phone_number for m in claimed} == {
        "15550000777"
    }  # only the first customer waits

    execute(database_url, "UPDATE outbox SET next_attempt_at = '2020-01-01 00:00:00'")
    again = claim(stub, "gateway-b")
    assert [m.id for m in again] == [first.id] + [m.id for m in rest + list(later.messages)]
    assert again[0].attempts == 1 and again[0].error.code == 131056


def test_a_permanent_failure_is_recorded_and_not_retried(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    Chat(stub).say("hi")
    message = claim(stub, "gateway-a")[0]

    ack(
        stub,
        "gateway-a",
        flow_pb2.OutboxAck(
            id=message.id,
            failed=flow_pb2.MetaError(code=131047, title="Re-engagement message"),
        ),
    )

    assert claim(stub, "gateway-a") == []


def test_an_ack_without_a_result_is_invalid(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        ack(stub, "gateway-a", flow_pb2.OutboxAck(id=1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delivery_statuses_never_move_backwards(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    Chat(stub).say("hi")
    message = claim(stub, "gateway-a")[0]
    ack(stub, "gateway-a", flow_pb2.OutboxAck(id=message.id, sent_wa_message_id="wamid.S1"))

    def record(status: int) -> flow_pb2.RecordStatusResponse:
        return stub.RecordStatus(
            flow_pb2.RecordStatusRequest(wa_message_id="wamid.S1", status=status)
        )

    assert record(flow_pb2.DELIVERY_STATUS_READ).delivery_status == flow_pb2.DELIVERY_STATUS_READ
    assert record(flow_pb2.DELIVERY_STATUS_DELIVERED).delivery_status == (
        flow_pb2.DELIVERY_STATUS_READ
    )
    assert record(flow_pb2.DELIVERY_STATUS_SENT).delivery_status == flow_pb2.DELIVERY_STATUS_READ
    unknown = stub.RecordStatus(flow_pb2.RecordStatusRequest(wa_message_id="wamid.other", status=2))
    assert not unknown.matched


def test_a_failed_status_keeps_metas_error(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    response = Chat(stub).say("hi", lease_owner="g")
    ack(stub, "g", flow_pb2.OutboxAck(id=response.messages[0].id, sent_wa_message_id="wamid.F"))

    recorded = stub.RecordStatus(
        flow_pb2.RecordStatusRequest(
            wa_message_id="wamid.F",
            status=flow_pb2.DELIVERY_STATUS_FAILED,
            errors=[flow_pb2.MetaError(code=131047, title="Re-engagement message")],
        )
    )

    assert recorded.delivery_status == flow_pb2.DELIVERY_STATUS_FAILED


def _ended_ago(database_url: str, seconds: float) -> None:
    """Age every lease so that it ended `seconds` ago."""
    ended = datetime.now(UTC) - timedelta(seconds=seconds)
    value: object = ended if database_url.startswith("postgresql") else sqlite_time(ended)
    execute(database_url, "UPDATE outbox SET lease_expires_at = :ended", ended=value)


def test_a_status_naming_the_outbox_id_records_a_message_sent_before_its_ack(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    chat = Chat(stub)
    message = chat.say("hi", lease_owner="gateway-a").messages[0]

    # Meta's "sent" status overtakes the ack (or the sender died before sending one).
    status = stub.RecordStatus(
        flow_pb2.RecordStatusRequest(
            wa_message_id="wamid.EARLY",
            status=flow_pb2.DELIVERY_STATUS_SENT,
            recipient_id=chat.phone_number,
            outbox_id=message.id,
        )
    )
    _ended_ago(database_url, 3600)

    assert status.matched and status.delivery_status == flow_pb2.DELIVERY_STATUS_SENT
    assert claim(stub, "gateway-b") == []  # sent: nobody sends it again
    late = flow_pb2.OutboxAck(id=message.id, sent_wa_message_id="wamid.EARLY")
    assert ack(stub, "gateway-a", late) == []
    # The event feed says it was sent, once: the late ack adds nothing.
    sent = stub.ListEvents(
        flow_pb2.ListEventsRequest(
            filter=flow_pb2.EventFilter(
                types=[flow_pb2.EVENT_TYPE_MESSAGE_SENT], phone_number=chat.phone_number
            )
        )
    ).events
    found = [(e.message_sent.outbox_id, e.message_sent.wa_message_id) for e in sent]
    assert found == [(message.id, "wamid.EARLY")]
    delivered = stub.RecordStatus(
        flow_pb2.RecordStatusRequest(
            wa_message_id="wamid.EARLY", status=flow_pb2.DELIVERY_STATUS_DELIVERED
        )
    )
    assert delivered.matched and delivered.delivery_status == flow_pb2.DELIVERY_STATUS_DELIVERED


def test_a_tracker_naming_another_customers_message_matches_nothing(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    message = Chat(stub).say("hi", lease_owner="gateway-a").messages[0]

    status = stub.RecordStatus(
        flow_pb2.RecordStatusRequest(
            wa_message_id="wamid.OTHER",
            status=flow_pb2.DELIVERY_STATUS_SENT,
            recipient_id="4915799999999",
            outbox_id=message.id,
        )
    )
    _ended_ago(database_url, 3600)

    assert not status.matched
    assert [m.id for m in claim(stub, "gateway-b")] == [message.id]


def test_a_lease_that_ended_without_an_ack_waits_a_grace_for_its_status(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    message = Chat(stub).say("hi", lease_owner="gateway-a").messages[0]

    _ended_ago(database_url, 1)  # maybe sent: its status webhook may still come
    assert claim(stub, "gateway-b") == []

    _ended_ago(database_url, 6)  # past the grace (5 s by default)
    assert [m.id for m in claim(stub, "gateway-b")] == [message.id]


def test_send_slots_of_a_number_are_shared_by_every_caller(database_url: str) -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    engine = create_db_engine(database_url, pool_size=1)
    slots = SendSlots(create_sessionmaker(engine), clock=lambda: now)
    number, other = "106540352242922", "106540352249999"
    try:
        # At 10 per second, a burst is a tenth of a second's worth: one slot.
        first, second, third = (slots.grant(number, 5, 10.0, 0) for _ in range(3))
        elsewhere = slots.grant(other, 1, 10.0, 0)
        bursty = [slots.grant("106540352240000", 5, 100.0, 0) for _ in range(2)]
        at_most = slots.grant("106540352241111", 50, 10.0, 0)
    finally:
        engine.dispose()

    assert (first.count, first.first_in, first.interval) == (5, 0.0, pytest.approx(0.1))
    # Whoever asks next (another gateway or worker) gets the slots after these, 0.1 s apart.
    assert [second.first_in, third.first_in] == pytest.approx([0.5, 1.0])
    assert at_most.count == 10  # a second's worth
    assert elsewhere.first_in == 0.0  # numbers do not share a budget
    # At 100 per second, 10 slots go at once (the first is due 0.09 s ago), then one per 0.01 s.
    assert [(g.count, g.first_in) for g in bursty] == [
        (5, pytest.approx(-0.09)),
        (5, pytest.approx(-0.04)),
    ]


def test_a_send_slot_request_without_a_rate_is_invalid(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GrantSendSlots(flow_pb2.GrantSendSlotsRequest(phone_number_id="1", count=1))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
