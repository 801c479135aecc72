"""flowsvc over TLS, with and without client certificates (the gateway presenting one too),
against certificates made for the run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import httpx
import pytest

from flowsvc.server import Server
from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.certificates import Authority, issue
from tests.gateway_harness import gateway_settings, running_gateway
from tests.servers import running_flowsvc

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return issue(tmp_path_factory.mktemp("tls"), "ours")


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    """Another CA: its certificates look right but are not ours."""
    return issue(tmp_path_factory.mktemp("tls-stranger"), "stranger")


def tls_settings(settings: Settings, ours: Authority, *, client_ca: bool) -> Settings:
    return replace(
        settings,
        tls_cert=str(ours.server.cert),
        tls_key=str(ours.server.key),
        tls_client_ca=str(ours.ca.cert) if client_ca else None,
    )


@pytest.fixture
def tls_server(settings: Settings, ours: Authority) -> Iterator[Server]:
    with running_flowsvc(tls_settings(settings, ours, client_ca=False)) as server:
        yield server


@pytest.fixture
def mtls_server(settings: Settings, ours: Authority) -> Iterator[Server]:
    with running_flowsvc(tls_settings(settings, ours, client_ca=True)) as server:
        yield server


def list_templates(channel: grpc.Channel) -> list[str]:
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    return [
        t.name for t in stub.ListTemplates(flow_pb2.ListTemplatesRequest(), timeout=10).templates
    ]


def secure(port: int, ca: Path, client: tuple[Path, Path] | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{port}", credentials)


def test_tls_works_with_our_ca(tls_server: Server, ours: Authority) -> None:
    with secure(tls_server.port, ours.ca.cert) as channel:
        assert "main_menu" in list_templates(channel)


@pytest.mark.parametrize("client", ["plaintext", "stranger-ca"])
def test_tls_refuses_a_client_that_cannot_trust_it(
    tls_server: Server, stranger: Authority, client: str
) -> None:
    channel = (
        grpc.insecure_channel(f"127.0.0.1:{tls_server.port}")
        if client == "plaintext"
        else secure(tls_server.port, stranger.ca.cert)
    )
    with channel, pytest.raises(grpc.RpcError) as caught:
        list_templates(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_works_with_a_client_certificate_from_our_ca(
    mtls_server: Server, ours: Authority
) -> None:
    with secure(mtls_server.port, ours.ca.cert, (ours.client.cert, ours.client.key)) as channel:
        assert "main_menu" in list_templates(channel)


@pytest.mark.parametrize("client", ["no-certificate", "stranger-certificate"])
def test_mtls_refuses_a_client_without_our_certificate(
    mtls_server: Server, ours: Authority, stranger: Authority, client: str
) -> None:
    pair = (stranger.client.cert, stranger.client.key) if client != "no-certificate" else None
    with (
        secure(mtls_server.port, ours.ca.cert, pair) as channel,
        pytest.raises(grpc.RpcError) as caught,
    ):
        list_templates(channel)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_tls_and_the_token_together(settings: Settings, ours: Authority) -> None:
    both = replace(tls_settings(settings, ours, client_ca=False), auth_token="t0ken")
    with running_flowsvc(both) as server, secure(server.port, ours.ca.cert) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            list_templates(channel)
        answer = flow_pb2_grpc.FlowServiceStub(channel).ListTemplates(
            flow_pb2.ListTemplatesRequest(), metadata=(("authorization", "Bearer t0ken"),)
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert answer.templates


def test_the_gateway_reaches_flowsvc_over_mtls(mtls_server: Server, ours: Authority) -> None:
    settings = gateway_settings(
        f"127.0.0.1:{mtls_server.port}",
        "http://127.0.0.1:9",  # no Graph API needed: nothing is sent in this test
        flowsvc_tls_ca=str(ours.ca.cert),
        flowsvc_tls_cert=str(ours.client.cert),
        flowsvc_tls_key=str(ours.client.key),
    )
    with running_gateway(settings) as gateway:
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text


def test_the_gateway_without_flowsvcs_ca_is_not_ready(tls_server: Server) -> None:
    settings = gateway_settings(f"127.0.0.1:{tls_server.port}", "http://127.0.0.1:9")
    with running_gateway(settings) as gateway:
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
    assert ready.status_code == 503
