"""The shared bearer token over a real gRPC server: every RPC but health refuses a call without
it (UNAUTHENTICATED, nothing changed), reflection included; health stays open."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest
from google.protobuf import message as protobuf_message
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowsvc.server import Server
from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import BUSINESS
from tests.database import execute, row_counts
from tests.servers import flowsvc_process, free_port, running_flowsvc

pytestmark = pytest.mark.usefixtures("seeded")

TOKEN = "test-token-4f9a1c"
SERVICE = flow_pb2.DESCRIPTOR.services_by_name["FlowService"]
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"
SUPPORT = Path(__file__).parents[1] / "flowsvc" / "default_templates" / "support.json"
CUSTOMER = flow_pb2.Customer(phone_number_id=BUSINESS, phone_number="15550007777")
OTHER = flow_pb2.Customer(phone_number_id=BUSINESS, phone_number="15550008888")
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
def guarded(settings: Settings) -> Iterator[Server]:
    """flowsvc with FLOWSVC_TOKEN set."""
    with running_flowsvc(replace(settings, auth_token=TOKEN)) as server:
        yield server


@pytest.fixture
def channel(guarded: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        yield channel


def support_copy() -> flow_pb2.TemplateDefinition:
    template = json.loads(SUPPORT.read_text())
    definition = flow_pb2.TemplateDefinition(
        name="support_copy", trigger_keywords=["support copy"], is_active=True
    )
    definition.menu_structure.update(template["menu_structure"])
    return definition


CHANGING_CALLS: dict[str, Callable[[], protobuf_message.Message]] = {
    "CreateTemplate": lambda: flow_pb2.CreateTemplateRequest(template=support_copy()),
    "ImportTemplates": lambda: flow_pb2.ImportTemplatesRequest(templates=[support_copy()]),
    "UpdateTemplate": lambda: flow_pb2.UpdateTemplateRequest(
        template=flow_pb2.TemplateDefinition(name="support", is_active=False),
        update_mask={"paths": ["is_active"]},
    ),
    "HandleMessage": lambda: flow_pb2.HandleMessageRequest(
        message=flow_pb2.InboundMessage(message_id="wamid.auth-1", customer=OTHER, text="hi")
    ),
    "StartConversation": lambda: flow_pb2.StartConversationRequest(
        customer=CUSTOMER,
        template_name="new_order",  # who wrote: within the service window
    ),
    "EndConversation": lambda: flow_pb2.EndConversationRequest(customer=CUSTOMER),
    "SweepExpired": lambda: flow_pb2.SweepExpiredRequest(),
}

REFUSED_METADATA = [
    pytest.param((), id="no-token"),
    pytest.param((("authorization", "Bearer wrong-token"),), id="wrong-token"),
    pytest.param((("authorization", f"Bearer {TOKEN}x"),), id="token-plus-a-char"),
    pytest.param((("authorization", f"Bearer {TOKEN[:-1]}"),), id="token-minus-a-char"),
    pytest.param((("authorization", TOKEN),), id="no-scheme"),
    pytest.param((("authorization", f"Basic {TOKEN}"),), id="basic-scheme"),
    pytest.param((("authorization", "Bearer "),), id="empty-bearer"),
    pytest.param((("x-token", TOKEN),), id="other-header"),
    pytest.param(
        (("authorization", "Bearer wrong"), ("authorization", f"Bearer {TOKEN}")),
        id="two-headers",
    ),
]


def call(channel: grpc.Channel, method: str, request: bytes, metadata: Metadata) -> bytes:
    """Any FlowService method with raw request bytes (the server must not even parse them)."""
    invoke = channel.unary_unary(
        f"/{SERVICE.full_name}/{method}",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    return invoke(request, metadata=metadata, timeout=10)  # type: ignore[no-any-return]


def start_an_expiring_conversation(channel: grpc.Channel) -> None:
    """A conversation for EndConversation to end and, once aged, for SweepExpired to sweep."""
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    stub.HandleMessage(
        flow_pb2.HandleMessageRequest(
            message=flow_pb2.InboundMessage(message_id="wamid.setup", customer=CUSTOMER, text="hi")
        ),
        metadata=(("authorization", f"Bearer {TOKEN}"),),
    )


CASES = [
    *(
        pytest.param(method, metadata.values[0], id=f"{metadata.id}-{method}")
        for method in CHANGING_CALLS
        for metadata in REFUSED_METADATA[:2]
    ),
    *(
        pytest.param("HandleMessage", metadata.values[0], id=f"{metadata.id}-HandleMessage")
        for metadata in REFUSED_METADATA[2:]
    ),
]


@pytest.mark.parametrize(("method", "metadata"), CASES)
def test_a_call_without_the_right_token_is_unauthenticated_and_changes_nothing(
    channel: grpc.Channel, database_url: str, method: str, metadata: Metadata
) -> None:
    start_an_expiring_conversation(channel)
    if method == "SweepExpired":
        execute(database_url, "UPDATE conversation_state SET expires_at = '2020-01-01 00:00:00'")
    request = CHANGING_CALLS[method]().SerializeToString()
    before = row_counts(database_url)

    with pytest.raises(grpc.RpcError) as caught:
        call(channel, method, request, metadata)

    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "token" in caught.value.details()
    assert row_counts(database_url) == before
    # The same request with the token does what it says: the refusal was about the token only.
    call(channel, method, request, (("authorization", f"Bearer {TOKEN}"),))
    assert row_counts(database_url) != before


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_every_flowservice_method_needs_the_token_even_for_garbage(
    channel: grpc.Channel, database_url: str, method: str
) -> None:
    before = row_counts(database_url)
    for request in (b"", b"\xff\x00 not a protobuf"):
        with pytest.raises(grpc.RpcError) as caught:
            call(channel, method, request, ())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert row_counts(database_url) == before


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer {TOKEN}", id="bearer"),
        pytest.param(f"bearer {TOKEN}", id="scheme-case-insensitive"),
    ],
)
def test_the_right_token_works(channel: grpc.Channel, authorization: str) -> None:
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    listed = stub.ListTemplates(
        flow_pb2.ListTemplatesRequest(), metadata=(("authorization", authorization),), timeout=10
    )
    assert {t.name for t in listed.templates} >= {"main_menu", "new_order"}


def test_health_needs_no_token(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE.full_name):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_without_a_token_configured_no_token_is_needed(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    assert stub.ListTemplates(flow_pb2.ListTemplatesRequest(), timeout=10).templates


def grpcurl(address: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "20", *args[:-1], address, args[-1]],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_grpcurl_with_the_token_header_reflects_and_calls_and_health_is_open(
    database_url: str, tmp_path: Path
) -> None:
    header = f"authorization: Bearer {TOKEN}"
    with flowsvc_process(database_url, tmp_path / "flowsvc.log", FLOWSVC_TOKEN=TOKEN) as process:
        address = process.address
        refused = grpcurl(address, "list")
        listed = grpcurl(address, "-H", header, "list")
        called = grpcurl(address, "-H", header, f"{SERVICE.full_name}/ListTemplates")
        # grpcurl learns Health's schema by reflection, which needs the token; the check doesn't.
        health = grpcurl(address, "-reflect-header", header, "grpc.health.v1.Health/Check")
        refused_call = grpcurl(
            address, "-reflect-header", header, f"{SERVICE.full_name}/ListTemplates"
        )

    assert refused.returncode != 0 and "Unauthenticated" in refused.stderr
    assert SERVICE.full_name in listed.stdout.split(), listed.stderr
    assert called.returncode == 0 and "main_menu" in called.stdout, called.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}, health.stderr
    assert refused_call.returncode != 0 and "Unauthenticated" in refused_call.stderr


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        pytest.param({}, "FLOWSVC_TOKEN", id="open-listen-without-token"),
        pytest.param(
            {"FLOWSVC_LISTEN": "127.0.0.1:{port}", "FLOWSVC_TLS_CERT": "/nonexistent/cert.pem",
             "FLOWSVC_TLS_KEY": "/nonexistent/key.pem"},
            "FLOWSVC_TLS_CERT",
            id="unreadable-certificate",
        ),
    ],
)  # fmt: skip
def test_flowsvc_refuses_to_start_and_names_the_setting(
    database_url: str, environ: dict[str, str], named: str
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FLOWSVC_")},
        "DATABASE_URL": database_url,
        "FLOWSVC_LISTEN": f"0.0.0.0:{port}",
        **{k: v.format(port=port) for k, v in environ.items()},
    }
    result = subprocess.run(
        [sys.executable, "-m", "flowsvc"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert named in result.stderr


def test_an_open_listen_is_allowed_when_told_and_warns(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    open_settings = replace(settings, listen="0.0.0.0:0", allow_unauthenticated=True)
    with caplog.at_level("WARNING", logger="flowsvc"), running_flowsvc(open_settings) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = flow_pb2_grpc.FlowServiceStub(channel)
            assert stub.ListTemplates(flow_pb2.ListTemplatesRequest(), timeout=10).templates
    assert any("FLOWSVC_ALLOW_UNAUTHENTICATED" in r.getMessage() for r in caplog.records)
