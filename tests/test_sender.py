"""The Graph API sender against the stand-in: each class of Meta answer gets the right verdict."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import pytest

from gateway.sender import DevTransport, GraphSender
from gateway.settings import Settings
from gateway.verdict import Verdict, classify
from menuflow.logs import JsonFormatter
from tests.graph_standin import StandinServer

NUMBER = "106540352242922"
TEXT = (
    '{"messaging_product":"whatsapp","recipient_type":"individual","to":"16505551234",'
    '"type":"text","text":{"preview_url":false,"body":"Hello"}}'
)
RETRYABLE = [1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056, 133004]
PERMANENT = [0, 3, 10, 100, 190, 200, 299, 368, 131005, 131008, 131009, 131021, 131026]
PERMANENT += [131031, 131047, 131051]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


def settings_for(url: str, **overrides: object) -> Settings:
    return Settings(
        app_secret="s",
        verify_token="v",
        access_token="test-access-token",
        graph_api_url=url,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
async def sender(graph: StandinServer) -> AsyncIterator[GraphSender]:
    graph.standin.reset()
    async with GraphSender(settings_for(graph.url)) as sender:
        yield sender


@pytest.mark.anyio
async def test_an_accepted_message_is_sent_with_metas_id(
    graph: StandinServer, sender: GraphSender
) -> None:
    verdict = await sender.send(NUMBER, TEXT, 1)
    [record] = graph.standin.accepted()
    assert verdict == Verdict("sent", wa_message_id=record.wa_message_id)
    assert record.body["text"]["body"] == "Hello"


@pytest.mark.anyio
@pytest.mark.parametrize("code", RETRYABLE, ids=str)
async def test_retryable_codes_are_retried_later(
    graph: StandinServer, sender: GraphSender, code: int
) -> None:
    graph.standin.fail(code=code, count=1)
    verdict = await sender.send(NUMBER, TEXT, 1)
    assert (verdict.kind, verdict.label, verdict.ambiguous) == ("retry", str(code), False)
    assert verdict.error is not None and verdict.error.details
    assert verdict.throttled is (code in (4, 80007, 130429))
    # A limit on one customer or on the business's quality is no outage of Meta's.
    assert verdict.transient is (code not in (131048, 131056))
    if verdict.transient:
        assert 0 <= verdict.delay_seconds <= 1  # full jitter, up to 2^0 s the first time


@pytest.mark.anyio
@pytest.mark.parametrize("code", PERMANENT, ids=str)
async def test_permanent_codes_fail_with_metas_code_and_text(
    graph: StandinServer, sender: GraphSender, code: int
) -> None:
    graph.standin.fail(code=code, count=1)
    verdict = await sender.send(NUMBER, TEXT, 1)
    assert verdict.kind == "failed"
    assert verdict.error is not None
    assert (verdict.error.code, verdict.error.title) == (code, verdict.error.title)
    assert verdict.error.title.startswith(f"(#{code})")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "code", "kind", "label"),
    [
        (503, None, "retry", "http_503"),
        (502, None, "retry", "http_502"),
        (429, None, "retry", "http_429"),
        (404, None, "failed", "http_404"),
        (400, 99999, "failed", "99999"),
        (500, 99999, "retry", "99999"),
    ],
    ids=["503_plain", "502_plain", "429_plain", "404_plain", "unknown_4xx", "unknown_5xx"],
)
async def test_unknown_answers_go_by_http_status(
    graph: StandinServer, sender: GraphSender, status: int, code: int | None, kind: str, label: str
) -> None:
    graph.standin.fail(status=status, code=code, count=1)
    verdict = await sender.send(NUMBER, TEXT, 1)
    assert (verdict.kind, verdict.label) == (kind, label)


@pytest.mark.anyio
async def test_a_meta_payload_refusal_is_permanent(sender: GraphSender) -> None:
    verdict = await sender.send(NUMBER, TEXT.replace('"Hello"', '"' + "x" * 4097 + '"'), 1)
    assert (verdict.kind, verdict.label) == ("failed", "131009")


@pytest.mark.anyio
async def test_a_dropped_connection_is_an_ambiguous_retry(
    graph: StandinServer, sender: GraphSender
) -> None:
    graph.standin.fail("drop", count=1)
    verdict = await sender.send(NUMBER, TEXT, 1)
    assert (verdict.kind, verdict.ambiguous, verdict.label) == ("retry", True, "ambiguous")
    assert verdict.delay_seconds >= 5


@pytest.mark.anyio
async def test_a_timeout_after_sending_is_an_ambiguous_retry(graph: StandinServer) -> None:
    graph.standin.fail("slow", delay=0.5, count=1)
    async with GraphSender(settings_for(graph.url, graph_timeout_seconds=0.2)) as sender:
        verdict = await sender.send(NUMBER, TEXT, 1)
    assert (verdict.kind, verdict.ambiguous) == ("retry", True)


@pytest.mark.anyio
async def test_a_refused_connection_is_a_plain_retry() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
        async with GraphSender(settings_for(url)) as sender:
            verdict = await sender.send(NUMBER, TEXT, 1)
    assert (verdict.kind, verdict.ambiguous, verdict.label) == ("retry", False, "network")


@pytest.mark.anyio
async def test_mark_as_read_posts_metas_body(graph: StandinServer, sender: GraphSender) -> None:
    assert await sender.mark_read(NUMBER, "wamid.IN1")
    [record] = graph.standin.received()
    assert record.body == {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": "wamid.IN1",
    }
    graph.standin.fail(status=500, reads=True, count=1)
    assert not await sender.mark_read(NUMBER, "wamid.IN2")


@pytest.mark.anyio
async def test_dev_mode_prints_instead_of_sending(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(dev_mode=True, graph_api_url="http://127.0.0.1:1")
    async with GraphSender(settings) as sender:
        assert isinstance(sender.transport, DevTransport)
        verdict = await sender.send(NUMBER, TEXT, 1)
    assert verdict.kind == "sent" and verdict.wa_message_id.startswith("wamid.DEV")
    [line] = [
        JsonFormatter("gateway").format(r)
        for r in caplog.records
        if r.getMessage() == "dev.outbound"
    ]
    assert "Hello" in line and "16505551234" not in line and "1234" in line


def meta_error(code: int, status: int = 400) -> tuple[int, bytes]:
    return status, f'{{"error":{{"code":{code},"message":"(#{code}) x"}}}}'.encode()


@pytest.mark.parametrize(
    ("earlier_hits", "low", "high"),
    [(0, 1, 2), (1, 4, 5), (2, 16, 18), (3, 64, 71), (8, 900, 900)],
    ids=["first", "second", "third", "fourth", "capped"],
)
def test_pair_rate_limit_backs_off_4_to_the_x(earlier_hits: int, low: int, high: int) -> None:
    verdict = classify(*meta_error(131056, 429), 1, earlier_hits)
    assert verdict.kind == "retry"
    assert low <= verdict.delay_seconds <= high


def test_pair_rate_backoff_counts_pair_rate_hits_not_other_failed_attempts() -> None:
    # Five 503s before the first 131056 must not make it wait 4^5 seconds.
    verdict = classify(*meta_error(131056, 429), attempts=6, pair_rate_hits=0)
    assert 1 <= verdict.delay_seconds <= 2


@pytest.mark.parametrize("code", [1, 2, 4, 80007, 130429, 131000], ids=str)
def test_transient_failures_are_retried_however_often_they_happen(code: int) -> None:
    # Never by a count alone: the send deadline ends the retries (tests/test_graph_outage.py).
    verdicts = [classify(*meta_error(code), n) for n in (1, 5, 50, 5000)]
    assert {(v.kind, v.transient) for v in verdicts} == {("retry", True)}


def test_backoff_is_full_jitter_exponential_and_capped() -> None:
    first = {classify(503, b"", 1).delay_seconds for _ in range(200)}
    fifth = {classify(503, b"", 5).delay_seconds for _ in range(200)}
    late = {classify(503, b"", 40, cap=7).delay_seconds for _ in range(200)}
    assert first <= {0, 1} and max(fifth) <= 16 and 0 in fifth and max(fifth) >= 12
    assert max(late) <= 7 and min(late) <= 1


def test_an_odd_200_is_still_sent_never_resent() -> None:
    assert classify(200, b"not json", 1) == Verdict("sent", wa_message_id="")
