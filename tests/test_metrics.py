"""flowsvc's Prometheus endpoint, scraped over HTTP from a real flowsvc after real calls."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from flowsvc.server import Server
from flowsvc.settings import Settings, SettingsError
from flowsvc.store.db import create_db_engine
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.gateway_harness import wait_until
from tests.servers import running_flowsvc
from tests.test_retention import to_the_address_check

pytestmark = pytest.mark.usefixtures("seeded")
TOKEN = "metrics-admin-token"


@pytest.fixture
def server(settings: Settings) -> Iterator[Server]:
    metered = dataclasses.replace(
        settings, metrics_listen="127.0.0.1:0", sweep_interval_seconds=0.05, auth_token=TOKEN
    )
    with running_flowsvc(metered) as server:
        yield server


@pytest.fixture
def channel(server: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel


def scrape(server: Server) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The endpoint's text, and each sample by (name, sorted labels)."""
    assert server.metrics_server is not None
    text = httpx.get(f"http://127.0.0.1:{server.metrics_server.port}/metrics", timeout=10).text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return text, samples


def test_flowsvc_exports_calls_messages_conversations_outbox_and_sweeps(
    server: Server, channel: grpc.Channel
) -> None:
    authorized = (("authorization", f"Bearer {TOKEN}"),)
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    chat = Chat(stub)
    message = chat.message(text="hi")
    stub.HandleMessage(flow_pb2.HandleMessageRequest(message=message), metadata=authorized)
    stub.HandleMessage(flow_pb2.HandleMessageRequest(message=message), metadata=authorized)
    with pytest.raises(grpc.RpcError):
        stub.GetTemplate(flow_pb2.GetTemplateRequest(name="nope"), metadata=authorized)
    with pytest.raises(grpc.RpcError):
        stub.GetTemplate(flow_pb2.GetTemplateRequest(name="main_menu"))  # no token

    wait_until(lambda: scrape(server)[1].get(("flowsvc_sweeps_total", (("result", "ok"),))))
    text, samples = scrape(server)

    def value(name: str, **labels: str) -> float | None:
        return samples.get((name, tuple(sorted(labels.items()))))

    assert value("flowsvc_rpcs_total", method="HandleMessage", code="OK") == 2
    assert value("flowsvc_rpcs_total", method="GetTemplate", code="NOT_FOUND") == 1
    assert value("flowsvc_rpcs_total", method="GetTemplate", code="UNAUTHENTICATED") == 1
    assert value("flowsvc_rpc_seconds_count", method="HandleMessage") == 2
    assert value("flowsvc_rpc_seconds_bucket", method="HandleMessage", le="+Inf") == 2
    assert value("flowsvc_messages_total", outcome="started") == 1
    assert value("flowsvc_messages_total", outcome="duplicate") == 1
    assert value("flowsvc_conversations_active") == 1
    assert value("flowsvc_outbox_pending") == 1  # the menu, never claimed by a gateway here
    oldest = value("flowsvc_outbox_oldest_pending_seconds")
    assert oldest is not None and oldest >= 0
    assert value("flowsvc_swept_rows_total", kind="conversations") == 0
    assert "_created" not in text


def test_calls_their_callers_gave_up_on_count_as_such_not_as_unknown_errors(
    server: Server, channel: grpc.Channel, database_url: str
) -> None:
    """A call still waiting for the database when its deadline passes, or when its caller
    cancels it, is counted DEADLINE_EXCEEDED or CANCELLED: not an error of flowsvc's."""
    authorized = (("authorization", f"Bearer {TOKEN}"),)
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    request = flow_pb2.ListEventsRequest()
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.begin() as holder:  # every flowsvc transaction waits behind this one
            if engine.dialect.name == "postgresql":  # (SQLite's BEGIN took the write lock)
                holder.exec_driver_sql("LOCK TABLE event_counter IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(grpc.RpcError) as caught:
                stub.ListEvents(request, metadata=authorized, timeout=0.5)
            assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            pending = stub.ListEvents.future(request, metadata=authorized)
            time.sleep(0.3)  # under way, waiting for the lock
            pending.cancel()
            time.sleep(0.3)  # flowsvc hears of the cancel
    finally:
        engine.dispose()

    def counted(code: str) -> float | None:  # (the scrape reads the database too)
        key = ("method", "ListEvents"), ("code", code)
        return scrape(server)[1].get(("flowsvc_rpcs_total", tuple(sorted(key))))

    wait_until(lambda: counted("DEADLINE_EXCEEDED") == 1)
    wait_until(lambda: counted("CANCELLED") == 1)
    assert counted("UNKNOWN") is None
    assert stub.ListEvents(request, metadata=authorized).last_id == 0  # flowsvc answers still


def test_without_the_setting_there_is_no_metrics_endpoint(flowsvc: Server) -> None:
    assert flowsvc.metrics_server is None


def test_a_metrics_address_without_a_port_is_refused() -> None:
    with pytest.raises(SettingsError, match="FLOWSVC_METRICS_LISTEN=localhost is not host:port"):
        Settings.from_env({"FLOWSVC_METRICS_LISTEN": "localhost"})


def test_customers_waiting_per_handoff_queue_and_the_oldest_wait(
    server: Server, channel: grpc.Channel
) -> None:
    authorized = (("authorization", f"Bearer {TOKEN}"),)
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    for number in ("16505550001", "16505550002", "16505550003"):
        chat = Chat(stub, phone_number=number)
        message = chat.message(text="hi")
        stub.HandleMessage(flow_pb2.HandleMessageRequest(message=message), metadata=authorized)
        queue = "billing" if number.endswith("1") else "support"
        request = flow_pb2.HandOffRequest(customer=chat.customer, queue=queue)
        stub.HandOff(request, metadata=authorized)

    samples = scrape(server)[1]

    assert samples[("flowsvc_handoff_waiting", (("queue", "billing"),))] == 1
    assert samples[("flowsvc_handoff_waiting", (("queue", "support"),))] == 2
    assert samples[("flowsvc_handoff_oldest_wait_seconds", (("queue", "support"),))] >= 0


def test_calls_waiting_for_their_result_and_the_oldest(settings: Settings) -> None:
    metered = dataclasses.replace(settings, metrics_listen="127.0.0.1:0")
    with running_flowsvc(metered) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = flow_pb2_grpc.FlowServiceStub(channel)
            none_yet = scrape(server)[1]
            to_the_address_check(stub, "16505550011")
            to_the_address_check(stub, "16505550012")
            waiting = scrape(server)[1]
            (call, _) = stub.ClaimCalls(flow_pb2.ClaimCallsRequest(owner="metrics-test")).calls
            stub.FinishCall(
                flow_pb2.FinishCallRequest(call_id=call.id, kind=flow_pb2.CALL_RESULT_KIND_TIMEOUT)
            )
            one_left = scrape(server)[1]

    assert none_yet[("flowsvc_calls_pending", ())] == 0
    assert none_yet[("flowsvc_calls_oldest_pending_seconds", ())] == 0
    assert waiting[("flowsvc_calls_pending", ())] == 2
    assert waiting[("flowsvc_calls_oldest_pending_seconds", ())] >= 0
    assert one_left[("flowsvc_calls_pending", ())] == 1  # claimed but not finished still waits
