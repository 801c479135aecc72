"""Events delivered to webhook endpoints by real gateways from a real flowsvc, to a receiver on
loopback that checks the signature: signed, in id order, filtered by type; a receiver failing for
a while gets everything once it recovers; a permanent 4xx dead-letters (listed, and counted in
/metrics) and delivery moves on; two gateways deliver each event once; a gateway SIGKILLed
mid-batch is replaced by another that delivers from the durable cursor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from gateway.event_endpoints import Endpoint
from gateway.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.event_receiver import SECRET, ReceiverServer
from tests.gateway_harness import (
    ACCESS_TOKEN,
    APP_SECRET,
    VERIFY_TOKEN,
    gateway_settings,
    running_gateway,
    wait_until,
)
from tests.graph_standin import StandinServer
from tests.servers import free_port

pytestmark = pytest.mark.usefixtures("seeded")
ROOT = Path(__file__).parents[1]
# Short leases, waits and backoff: a takeover or a retry takes a second, not a minute.
FAST = {
    "event_lease_seconds": 3,
    "event_timeout_seconds": 1.0,
    "event_wait_seconds": 0.2,
    "event_retry_min_seconds": 0.05,
    "event_retry_max_seconds": 0.2,
}


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[ReceiverServer]:
    with ReceiverServer() as server:
        yield server


def endpoint(url: str, name: str = "kitchen", **options: Any) -> Endpoint:
    return Endpoint(name=name, url=url, secret=SECRET, from_oldest=True, **options)


def settings(
    flowsvc_target: str, graph: StandinServer, *endpoints: Endpoint, **more: Any
) -> Settings:
    return gateway_settings(flowsvc_target, graph.url, event_endpoints=endpoints, **(FAST | more))


def talk(stub: flow_pb2_grpc.FlowServiceStub, customers: int, first: int = 0) -> None:
    """Each customer says hi and picks a new order: several events each."""
    for n in range(first, first + customers):
        chat = Chat(stub, phone_number=f"1650555{n:04d}")
        chat.say("hi")
        chat.tap("new_order")


def all_ids(stub: flow_pb2_grpc.FlowServiceStub, **filters: Any) -> list[int]:
    found: list[int] = []
    token = ""
    while True:
        page = stub.ListEvents(
            flow_pb2.ListEventsRequest(
                filter=flow_pb2.EventFilter(**filters), page_size=500, page_token=token
            )
        )
        found += [e.id for e in page.events]
        token = page.next_page_token
        if not token:
            return found


def metric(gateway_url: str, name: str, endpoint: str) -> float:
    text = httpx.get(f"{gateway_url}/metrics").text
    found = re.search(rf'^{name}{{endpoint="{endpoint}"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_events_arrive_signed_in_order_and_filtered_by_type(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    everything = endpoint(receiver.url, "everything")
    starts = endpoint(receiver.url, "starts", types=frozenset({"conversation_started"}))
    with running_gateway(settings(flowsvc_target, graph, everything, starts)):
        talk(stub, 3)
        r = receiver.receiver
        wait_until(lambda: r.delivered("everything") == all_ids(stub), timeout=20)
        wanted = all_ids(stub, types=[flow_pb2.EVENT_TYPE_CONVERSATION_STARTED])
        wait_until(lambda: r.delivered("starts") == wanted, timeout=20)

    assert len(wanted) == 3
    assert len(all_ids(stub)) > 3
    posts = r.all_posts()
    assert all(p.signed for p in posts)
    # Protobuf's JSON mapping: each event parses back into an Event, its id for dedupe.
    first = posts[0].events[0]
    parsed = json_format.ParseDict(first, flow_pb2.Event())
    assert parsed.id == int(first["id"]) and parsed.type != flow_pb2.EVENT_TYPE_UNSPECIFIED


def test_a_forged_signature_is_one_the_receiver_refuses() -> None:
    from gateway.event_signature import sign
    from tests.event_receiver import signature_ok

    body = b'{"endpoint":"kitchen","events":[]}'
    header = sign(SECRET, int(__import__("time").time()), body)
    assert signature_ok(SECRET, header, body)
    assert not signature_ok("another-secret", header, body)
    assert not signature_ok(SECRET, header, body + b" ")


def test_a_receiver_failing_for_a_while_gets_everything_once_it_recovers(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    r = receiver.receiver
    r.answer = 503
    with running_gateway(settings(flowsvc_target, graph, endpoint(receiver.url))) as gateway:
        talk(stub, 2)
        wait_until(lambda: len(r.all_posts()) >= 3, timeout=20)  # refused, retried
        talk(stub, 2, first=2)  # more while it is down
        r.answer = 200
        wait_until(lambda: r.delivered() == all_ids(stub), timeout=20)
        text = httpx.get(f"{gateway.url}/metrics").text
        assert re.search(
            r'gateway_event_posts_total\{endpoint="kitchen",result="retry"\} [1-9]', text
        )

    delivered = r.delivered()
    assert delivered == sorted(set(delivered))  # in order, none twice, none skipped
    assert stub.ListDeadLetters(flow_pb2.ListDeadLettersRequest()).dead_letters == []


def test_a_permanent_4xx_dead_letters_the_batch_and_delivery_moves_on(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    r = receiver.receiver
    r.answer = 410
    hook = endpoint(receiver.url, types=frozenset({"conversation_started"}))
    with running_gateway(settings(flowsvc_target, graph, hook)) as gateway:
        talk(stub, 2)
        request = flow_pb2.ListDeadLettersRequest(endpoint="kitchen")
        wait_until(lambda: len(stub.ListDeadLetters(request).dead_letters) == 2, timeout=20)
        assert metric(gateway.url, "gateway_events_dead_lettered_total", "kitchen") == 2
        listed = stub.ListDeadLetters(request)
        refused = all_ids(stub, types=[flow_pb2.EVENT_TYPE_CONVERSATION_STARTED])
        assert sorted(d.event_id for d in listed.dead_letters) == refused
        assert {(d.http_status, d.reason, d.endpoint) for d in listed.dead_letters} == {
            (410, "HTTP 410", "kitchen")
        }

        r.answer = 200
        talk(stub, 1, first=5)
        later = all_ids(stub, types=[flow_pb2.EVENT_TYPE_CONVERSATION_STARTED])[2:]
        wait_until(lambda: r.delivered() == later, timeout=20)

    # The refused events were posted once each and not again.
    posted = [i for p in r.all_posts() for i in p.ids]
    assert sorted(posted) == refused + later


def test_retrying_past_the_endpoints_deadline_dead_letters_the_batch(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    r = receiver.receiver
    r.answer = 503
    hook = endpoint(receiver.url, types=frozenset({"conversation_started"}), deadline_seconds=1.0)
    with running_gateway(settings(flowsvc_target, graph, hook)) as gateway:
        talk(stub, 1)
        request = flow_pb2.ListDeadLettersRequest(endpoint="kitchen")
        (letter,) = wait_until(lambda: stub.ListDeadLetters(request).dead_letters, timeout=20)
        assert metric(gateway.url, "gateway_events_dead_lettered_total", "kitchen") == 1

    assert letter.event_id == all_ids(stub, types=[flow_pb2.EVENT_TYPE_CONVERSATION_STARTED])[0]
    assert (letter.http_status, letter.reason) == (503, "deadline passed; last: HTTP 503")
    assert len(r.all_posts()) >= 2  # retried before giving up


def test_two_gateways_deliver_each_event_once(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    hook = endpoint(receiver.url)
    r = receiver.receiver
    with (
        running_gateway(settings(flowsvc_target, graph, hook, gateway_id="gateway-a")),
        running_gateway(settings(flowsvc_target, graph, hook, gateway_id="gateway-b")),
    ):
        talk(stub, 4)
        wait_until(lambda: r.delivered() == all_ids(stub), timeout=20)
    assert r.delivered() == sorted(set(r.delivered()))
    assert all(200 <= p.answered < 300 for p in r.all_posts())


def test_a_gateway_killed_mid_delivery_is_replaced_from_the_cursor(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    r = receiver.receiver
    r.answer = 0  # hold every POST: the first gateway's batch is in flight when it dies
    port = free_port()
    hooks = [
        {"name": "kitchen", "url": receiver.url, "secret_env": "KITCHEN_SECRET", "start": "oldest"}
    ]
    env = os.environ | {
        "META_APP_SECRET": APP_SECRET,
        "META_VERIFY_TOKEN": VERIFY_TOKEN,
        "META_ACCESS_TOKEN": ACCESS_TOKEN,
        "FLOWSVC_TARGET": flowsvc_target,
        "GRAPH_API_URL": graph.url,
        "GATEWAY_PORT": str(port),
        "MARK_AS_READ": "0",
        "LOG_LEVEL": "WARNING",
        "EVENT_ENDPOINTS": json.dumps(hooks),
        "KITCHEN_SECRET": SECRET,
        "EVENT_LEASE_SECONDS": "3",
        "EVENT_TIMEOUT_SECONDS": "1",
        "EVENT_WAIT_SECONDS": "0.2",
    }
    talk(stub, 2)
    process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env)
    try:
        wait_until(lambda: r.all_posts(), timeout=20)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    held = r.all_posts()[0].ids
    r.answer = 200
    r.release()
    talk(stub, 1, first=2)
    with running_gateway(settings(flowsvc_target, graph, endpoint(receiver.url))):
        wait_until(lambda: r.delivered() == all_ids(stub), timeout=20)

    # The batch the dead gateway had in flight went out again from its first event: no gap.
    assert held[0] == all_ids(stub)[0]
    assert r.delivered() == all_ids(stub)


def test_a_claim_by_another_owner_is_refused_until_the_lease_ends(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    talk(stub, 1)
    claim = flow_pb2.ClaimEventDeliveryRequest(
        endpoint="kitchen", owner="a", lease_seconds=30, start=flow_pb2.DELIVERY_START_OLDEST
    )
    first = stub.ClaimEventDelivery(claim)
    claim.owner = "b"
    second = stub.ClaimEventDelivery(claim)
    assert first.leased and first.events and first.cursor == 0
    assert not second.leased and second.holder == "a" and not second.events

    with pytest.raises(grpc.RpcError) as caught:
        stub.AckEventDelivery(
            flow_pb2.AckEventDeliveryRequest(
                endpoint="kitchen", owner="b", from_id=0, through_id=first.through_id
            )
        )
    assert caught.value.code() == grpc.StatusCode.ABORTED
    acked = stub.AckEventDelivery(
        flow_pb2.AckEventDeliveryRequest(
            endpoint="kitchen", owner="a", from_id=0, through_id=first.through_id
        )
    )
    assert acked.cursor == first.through_id
    with pytest.raises(grpc.RpcError) as again:  # the same batch twice: the cursor moved
        stub.AckEventDelivery(
            flow_pb2.AckEventDeliveryRequest(
                endpoint="kitchen", owner="a", from_id=0, through_id=first.through_id
            )
        )
    assert again.value.code() == grpc.StatusCode.ABORTED


def test_a_gateway_stopping_gives_its_lease_up_to_the_next_at_once(
    flowsvc_target: str,
    stub: flow_pb2_grpc.FlowServiceStub,
    graph: StandinServer,
    receiver: ReceiverServer,
) -> None:
    r = receiver.receiver
    long_lease = settings(flowsvc_target, graph, endpoint(receiver.url), event_lease_seconds=60)
    with running_gateway(long_lease):
        talk(stub, 1)
        wait_until(lambda: r.delivered() == all_ids(stub), timeout=20)

    taken = stub.ClaimEventDelivery(
        flow_pb2.ClaimEventDeliveryRequest(endpoint="kitchen", owner="next", renew_only=True)
    )
    assert taken.leased  # at once, not when the stopped gateway's 60 s lease ends
    # The cursor skips nothing: every event at or before it was delivered. A batch the stop cut
    # short (posted, not yet acked) lies after it and goes out again (at least once).
    delivered = set(r.delivered())
    assert all(i in delivered for i in all_ids(stub) if i <= taken.cursor)
