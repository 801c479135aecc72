"""menuflow.client against a real flowsvc: the sync and asyncio clients make the same calls,
send a role's token (and reach flowsvc over mutual TLS), raise readable exceptions carrying the
field violations, retry UNAVAILABLE with backoff within the call's deadline, and never make a
retried change twice."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest

from flowsvc.settings import Settings
from menuflow.client import (
    Aborted,
    AsyncFlowClient,
    Connection,
    FailedPrecondition,
    FlowClient,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    message_template,
    to_dict,
)
from menuflow.v1 import flow_pb2_grpc
from tests.certificates import issue
from tests.chat import BUSINESS, Chat
from tests.database import row_counts
from tests.servers import free_port, running_flowsvc
from tests.steering import PAY_ORDER, wrote_hours_ago

pytestmark = pytest.mark.usefixtures("seeded")

PHONE = "15550001111"


def connect(target: str, **options: object) -> Connection:
    return Connection(target=target, business=BUSINESS, **options)  # type: ignore[arg-type]


@pytest.fixture
def client(flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub) -> Iterator[FlowClient]:
    with FlowClient(connect(flowsvc_target)) as client:
        client.import_templates([json.loads(PAY_ORDER.read_text())])
        Chat(stub, PHONE).say("hi")  # the customer wrote: within the service window
        yield client


def test_the_payment_example(client: FlowClient) -> None:
    client.start_conversation(
        PHONE,
        "pay_order",
        context={"item": "Cake", "total": "9.00"},
        initial_step="awaiting_payment",
    )
    waiting = client.get_conversation(PHONE)

    done = client.update_conversation(
        PHONE, context={"paid": True}, step="paid", expected_revision=waiting.revision, send=True
    )

    assert waiting.current_step == "awaiting_payment"
    assert client.get_result(done.result_reference).context["paid"] is True
    assert to_dict(done)["result_reference"] == done.result_reference
    assert [r.reference for r in client.list_results(phone_number=PHONE)] == [done.result_reference]
    with pytest.raises(NotFound):
        client.get_conversation(PHONE)


def test_the_async_client_has_the_same_calls(flowsvc_target: str, client: FlowClient) -> None:
    async def walk() -> tuple[str, str, int]:
        async with AsyncFlowClient(connect(flowsvc_target)) as flow:
            started = await flow.start_conversation(PHONE, "pay_order", context={"item": "Tea"})
            moved = await flow.update_conversation(PHONE, step="awaiting_payment")
            sent = await flow.send_message(PHONE, text="Your tea is brewing")
            listed = await flow.list_conversations(flow="pay_order")
            await flow.end_conversation(PHONE)
            return started.conversation.flow, moved.conversation.current_step, len(listed) + sent.id

    flow, step, count = asyncio.run(walk())
    assert (flow, step) == ("pay_order", "awaiting_payment")
    assert count > 1


def test_handing_off_and_resuming_sync_and_async(flowsvc_target: str, client: FlowClient) -> None:
    client.start_conversation(PHONE, "pay_order", context={"item": "Tea"})
    handed = client.hand_off(PHONE, reason="asks for a refund", queue="billing", priority=2)
    assert handed.conversation.handoff.queue == "billing"
    assert [c.customer.phone_number for c in client.handed_off(queue="billing")] == [PHONE]
    with pytest.raises(NotFound):
        client.hand_off("15550009999")

    async def walk() -> tuple[bool, str, bool]:
        async with AsyncFlowClient(connect(flowsvc_target)) as flow:
            again = await flow.hand_off(PHONE)
            waiting = await flow.handed_off()
            back = await flow.resume(PHONE, step="awaiting_payment", context={"refund": False})
            try:
                await flow.resume(PHONE)
            except FailedPrecondition:
                refused = True
            else:
                refused = False
            return (
                again.already_handed_off and len(waiting) == 1,
                back.conversation.current_step,
                refused,
            )

    already, step, refused = asyncio.run(walk())
    assert (already, step, refused) == (True, "awaiting_payment", True)
    assert client.get_conversation(PHONE).context["refund"] is False


def test_invalid_arguments_list_every_violation_readably(client: FlowClient) -> None:
    with pytest.raises(InvalidArgument) as caught:
        client.create_template({"name": "Bad Name", "menu_structure": {"type": "button"}})

    fields = [v.field for v in caught.value.violations]
    assert "name" in fields and "menu_structure.action" in fields
    text = str(caught.value)
    assert text.startswith("INVALID_ARGUMENT: template 'Bad Name' is invalid\n")
    assert "\n  menu_structure.action: " in text


def test_a_stale_revision_and_a_closed_window_raise_their_own_exceptions(
    client: FlowClient, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    client.start_conversation(PHONE, "pay_order", context={"item": "Tea"})
    with pytest.raises(Aborted):
        client.update_conversation(PHONE, step="awaiting_payment", expected_revision=1)
    late = Chat(stub, "15550002222")
    wrote_hours_ago(late, 48)
    with pytest.raises(FailedPrecondition, match="24-hour customer service window"):
        client.send_message(late.phone_number, text="hello")
    sent = client.send_message(
        late.phone_number,
        text="hello",
        template=message_template("order_ready", "en_US", body=["K7M4Q2"], quick_replies={0: "ok"}),
    )
    assert json.loads(sent.body_json)["template"]["components"][1]["sub_type"] == "quick_reply"


def test_a_retried_change_is_made_once(client: FlowClient, database_url: str) -> None:
    """The client's request id makes flowsvc answer a retry with the first result."""
    before = row_counts(database_url)["outbox"]
    first = client.send_message(PHONE, text="once", request_id="fixed-id")
    again = client.send_message(PHONE, text="once", request_id="fixed-id")
    assert again.id == first.id
    assert row_counts(database_url)["outbox"] == before + 1


def test_unavailable_is_retried_until_flowsvc_answers(settings: Settings) -> None:
    port = free_port()
    target = f"127.0.0.1:{port}"
    calling = threading.Event()
    answer: list[object] = []

    def call() -> None:
        with FlowClient(connect(target, timeout=30, retries=50, max_backoff=0.5)) as flow:
            calling.set()
            answer.append(flow.list_templates())

    caller = threading.Thread(target=call)
    caller.start()
    calling.wait(10)
    try:
        with running_flowsvc(replace(settings, listen=target)):
            caller.join(30)
    finally:
        caller.join(30)
    assert answer and {t.name for t in answer[0]} >= {"main_menu"}  # type: ignore[attr-defined]


def test_retries_stop_at_the_deadline() -> None:
    target = f"127.0.0.1:{free_port()}"  # nobody listens
    with FlowClient(connect(target, timeout=1.0, retries=100)) as flow:
        with pytest.raises(Unavailable) as caught:
            flow.list_templates()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_the_token_is_sent_and_the_role_enforced(settings: Settings) -> None:
    tokens = (("client", "client-t0ken"),)
    with running_flowsvc(replace(settings, auth_token="admin-t0ken", tokens=tokens)) as server:
        target = f"127.0.0.1:{server.port}"
        with FlowClient(connect(target, token="client-t0ken")) as flow:
            assert flow.list_conversations() == []
            with pytest.raises(PermissionDenied, match="needs a token of the role admin"):
                flow.list_templates()
        with FlowClient(connect(target, token="admin-t0ken")) as flow:
            assert flow.list_templates()


def test_mutual_tls(settings: Settings, tmp_path: Path) -> None:
    ours = issue(tmp_path, "client-tls")
    secured = replace(
        settings,
        tls_cert=str(ours.server.cert),
        tls_key=str(ours.server.key),
        tls_client_ca=str(ours.ca.cert),
    )
    with running_flowsvc(secured) as server:
        connection = connect(
            f"localhost:{server.port}",
            tls_ca=str(ours.ca.cert),
            tls_cert=str(ours.client.cert),
            tls_key=str(ours.client.key),
        )
        with FlowClient(connection) as flow:
            assert flow.list_templates()


def test_connection_from_the_environment() -> None:
    connection = Connection.from_env(
        {"MENUFLOW_TARGET": "flowsvc:50051", "MENUFLOW_TOKEN": "s3cret", "MENUFLOW_TIMEOUT": "3"},
        business="123",
    )
    assert (connection.target, connection.token, connection.timeout) == (
        "flowsvc:50051",
        "s3cret",
        3,
    )
    assert connection.business == "123"
    assert "s3cret" not in repr(connection)


def test_watch_events_resumes_after_flowsvc_restarts_missing_none(settings: Settings) -> None:
    target = f"127.0.0.1:{free_port()}"
    seen: list[int] = []
    stopping = threading.Event()
    flow = FlowClient(connect(target, max_backoff=0.2))

    def watch() -> None:
        try:
            for event in flow.watch_events(0):
                seen.append(event.id)
        except Exception:
            if not stopping.is_set():
                raise

    watcher = threading.Thread(target=watch)
    try:
        with running_flowsvc(replace(settings, listen=target)):
            watcher.start()
            with grpc.insecure_channel(target) as channel:
                Chat(flow_pb2_grpc.FlowServiceStub(channel), PHONE).say("hi")
        with running_flowsvc(replace(settings, listen=target)):  # the stream broke; it's back
            with grpc.insecure_channel(target) as channel:
                grpc.channel_ready_future(channel).result(timeout=30)  # past the backoff
                Chat(flow_pb2_grpc.FlowServiceStub(channel), PHONE).say("menu")
                everything = [e.id for e in flow.list_events()]
                wait_until(lambda: len(set(seen)) >= len(everything))
    finally:
        stopping.set()
        flow.close()
        watcher.join(timeout=30)
    assert not watcher.is_alive()
    assert sorted(set(seen)) == everything  # none missing, none extra once deduped by id
    assert seen == sorted(seen)


def test_the_async_client_lists_and_watches_events(flowsvc_target: str, client: FlowClient) -> None:
    async def walk() -> tuple[list[int], list[int]]:
        async with AsyncFlowClient(connect(flowsvc_target)) as flow:
            listed = [e.id for e in await flow.list_events(types=["step_entered"])]
            watched: list[int] = []
            async for event in flow.watch_events(0, types=["STEP_ENTERED"]):
                watched.append(event.id)
                if len(watched) == len(listed):
                    break
            return listed, watched

    listed, watched = asyncio.run(walk())
    assert listed and watched == listed


def wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.05)
