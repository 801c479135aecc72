"""The webhook over real HTTP: the handshake, and each refusal (401, 400, 408, 413) before
flowsvc."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.signature import sign
from tests.gateway_harness import (
    APP_SECRET,
    VERIFY_TOKEN,
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    signed,
    webhook,
)
from tests.graph_standin import ServerThread
from tests.payloads import WEBHOOKS, load_webhook, webhook_names

NOT_MESSAGES = [
    name
    for name in webhook_names()
    if all(c["field"] != "messages" for e in load_webhook(name)["entry"] for c in e["changes"])
]


class NoGraphCalls:
    """The Graph API for a gateway that must never call it."""

    async def post(self, url: str, headers: object, content: bytes) -> tuple[int, bytes]:
        raise AssertionError(f"the Graph API must not be called: {url}")

    async def aclose(self) -> None:
        pass


@pytest.fixture(scope="module")
def gateway() -> Iterator[ServerThread]:
    # FlowService is unreachable (port 9 on loopback): whatever reaches it fails with 503.
    settings = gateway_settings("127.0.0.1:9", "http://127.0.0.1:9", max_body_bytes=64 * 1024)
    with running_gateway(settings, NoGraphCalls()) as server:
        yield server


@pytest.fixture
def client(gateway: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        yield client


def metric(client: httpx.Client, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_the_verification_handshake_echoes_the_challenge(client: httpx.Client) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = client.get("/webhook", params=params)
    assert (response.status_code, response.text) == (200, "1158201444")
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"},
    ],
    ids=["wrong_token", "no_token", "wrong_mode", "no_mode"],
)
def test_a_bad_handshake_is_forbidden(client: httpx.Client, params: dict[str, str]) -> None:
    response = client.get("/webhook", params=params)
    assert response.status_code == 403
    assert "1" != response.text


DOCUMENT = webhook(message("16505551234", text="hi"))
BODY = json.dumps(DOCUMENT).encode()
GOOD = sign(APP_SECRET, BODY)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (BODY, []),
        (BODY, [("X-Hub-Signature-256", "")]),
        (BODY, [("X-Hub-Signature", "sha1=" + "0" * 40)]),
        (BODY, [("X-Hub-Signature-256", "sha1=" + GOOD[7:47])]),
        (BODY, [("X-Hub-Signature-256", GOOD.upper())]),
        (BODY, [("X-Hub-Signature-256", GOOD), ("X-Hub-Signature-256", GOOD)]),
        (BODY, [("X-Hub-Signature-256", sign("", BODY))]),
        (BODY, [("X-Hub-Signature-256", sign("another-secret", BODY))]),
        (json.dumps(DOCUMENT, indent=1).encode(), [("X-Hub-Signature-256", GOOD)]),
        (BODY[:-10], [("X-Hub-Signature-256", GOOD)]),
        (BODY.replace(b"hi", b"ho"), [("X-Hub-Signature-256", GOOD)]),
    ],
    ids=[
        "missing",
        "empty",
        "sha1_header",
        "sha1_prefix",
        "wrong_case",
        "two_headers",
        "empty_secret",
        "wrong_secret",
        "reencoded_after_signing",
        "truncated_after_signing",
        "altered_after_signing",
    ],
)
def test_unsigned_or_wrongly_signed_posts_get_401_and_change_nothing(
    client: httpx.Client, body: bytes, headers: list[tuple[str, str]]
) -> None:
    before = metric(client, "gateway_messages_total")
    headers.append(("Content-Type", "application/json"))
    response = client.post("/webhook", content=body, headers=headers)
    assert response.status_code == 401
    assert metric(client, "gateway_messages_total") == before


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", BODY[:-10], b"\xff\xfe\x00garbage", b"[1, 2]", b"[" * 50_000],
    ids=["empty", "open_brace", "text", "truncated", "not_utf8", "array", "deeply_nested"],
)
def test_signed_malformed_json_gets_400(client: httpx.Client, body: bytes) -> None:
    payload, headers = signed(body)
    assert client.post("/webhook", content=payload, headers=headers).status_code == 400


def test_an_oversized_body_with_a_length_gets_413_unread(client: httpx.Client) -> None:
    payload, headers = signed(b" " * (64 * 1024 + 1))
    assert client.post("/webhook", content=payload, headers=headers).status_code == 413


def test_an_oversized_chunked_body_gets_413(client: httpx.Client) -> None:
    chunk = b" " * 8192
    _, headers = signed(b"")

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield chunk

    response = client.post("/webhook", content=chunks(), headers=headers)
    assert response.status_code == 413


def test_the_fixtures_hold_another_field_than_messages() -> None:
    assert NOT_MESSAGES == ["template_status_update"]


@pytest.mark.parametrize("name", NOT_MESSAGES)
def test_other_fields_are_acknowledged_and_ignored(client: httpx.Client, name: str) -> None:
    response = post_webhook(client, load_webhook(name))
    assert response.status_code == 200


def test_a_message_flowsvc_cannot_record_gets_503_so_meta_redelivers(client: httpx.Client) -> None:
    assert post_webhook(client, DOCUMENT).status_code == 503
    assert metric(client, 'gateway_webhooks_total{result="flowsvc_unavailable"}') >= 1


def test_health_ready_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503
    assert metric(client, 'gateway_webhooks_total{result="bad_signature"}') >= 0
    assert "gateway_send_seconds_bucket" in client.get("/metrics").text


@pytest.mark.parametrize("name", webhook_names())
def test_every_webhook_shape_unsigned_altered_or_truncated_is_refused(
    client: httpx.Client, name: str
) -> None:
    body = (WEBHOOKS / f"{name}.json").read_bytes()
    before = metric(client, "gateway_messages_total")
    unsigned = client.post("/webhook", content=body, headers={"Content-Type": "application/json"})
    _, headers = signed(body)
    altered = client.post(
        "/webhook", content=body.replace(b"whatsapp", b"WhatsApp"), headers=headers
    )
    truncated_body, truncated_headers = signed(body[: len(body) // 2])
    truncated = client.post("/webhook", content=truncated_body, headers=truncated_headers)
    assert (unsigned.status_code, altered.status_code, truncated.status_code) == (401, 401, 400)
    assert metric(client, "gateway_messages_total") == before


def raw_request(server: ServerThread, head: bytes, body_parts: list[bytes], pause: float) -> bytes:
    """Speak HTTP/1.1 by hand, as a slow or hostile client would; the bytes the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for part in body_parts:
                time.sleep(pause)
                sock.sendall(part)
        except OSError:
            pass  # the server may close the connection before the client is done
        return sock.recv(4096)


def test_oversized_headers_are_cut_off(gateway: ServerThread) -> None:
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 1_000_000 + b"\r\n\r\n"

    answer = raw_request(gateway, head, [], 0)

    assert answer.startswith(b"HTTP/1.1 431")  # refused past 16 KiB, the rest unread
    assert b"connection: close" in answer


def test_a_head_that_drips_in_is_cut_off_at_the_limit(gateway: ServerThread) -> None:
    start = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Padding: "

    answer = raw_request(gateway, start, [b"a" * 1024] * 40, 0.01)  # one header line, never ended

    assert answer.startswith(b"HTTP/1.1 431")


def test_a_body_that_drips_in_is_cut_off_with_408(tmp_path: Path) -> None:
    settings = gateway_settings("127.0.0.1:9", "http://127.0.0.1:9", body_timeout_seconds=0.5)
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"
    with running_gateway(settings, NoGraphCalls()) as server:
        started = time.monotonic()
        answer = raw_request(server, head, [b"{"] * 5, 0.3)

    assert answer.startswith(b"HTTP/1.1 408")
    assert time.monotonic() - started < 5


def test_metrics_carry_no_created_series(client: httpx.Client) -> None:
    post_webhook(client, load_webhook(webhook_names()[0]))

    text = client.get("/metrics").text

    assert "gateway_webhooks_total" in text
    assert "_created" not in text
