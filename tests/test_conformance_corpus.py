"""Conformance against payloads written by others: the shared corpus (pywa's samples, Meta's
documented examples) when it lies beside the repository as `../shared/corpus`, or where
MENUFLOW_CORPUS points. The project's own tests use tests/fixtures/; this run is extra, and skips
when there is no corpus (MENUFLOW_REQUIRE_CORPUS=1 makes a missing one fail, as CI does)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.payload import parse
from tests.gateway_harness import gateway_settings, post_webhook, running_gateway, signed
from tests.graph_standin import StandinServer

CORPUS = Path(
    os.environ.get("MENUFLOW_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)
if not CORPUS.is_dir():
    if os.environ.get("MENUFLOW_REQUIRE_CORPUS") == "1":
        raise RuntimeError(f"MENUFLOW_REQUIRE_CORPUS=1 but there is no corpus at {CORPUS}")
    pytest.skip(
        f"no corpus at {CORPUS} (a clone alone has none; set MENUFLOW_CORPUS to run this)",
        allow_module_level=True,
    )

WEBHOOKS = sorted((CORPUS / "webhooks").glob("*.json"))
SENDS = sorted((CORPUS / "sends").glob("*request*.json"))


def test_the_corpus_has_files() -> None:
    assert WEBHOOKS and SENDS


@pytest.mark.parametrize("path", WEBHOOKS, ids=lambda p: p.stem)
def test_every_corpus_webhook_parses_without_skipping(path: Path) -> None:
    parsed = parse(json.loads(path.read_text()))
    assert parsed.skipped == 0
    assert len(parsed.messages) + len(parsed.statuses) + parsed.ignored == 1


@pytest.fixture(scope="module")
def standin() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(flowsvc_target: str, seeded: str, standin: StandinServer) -> Iterator[httpx.Client]:
    settings = gateway_settings(flowsvc_target, standin.url)
    with running_gateway(settings) as server, httpx.Client(base_url=server.url) as client:
        yield client


def test_every_corpus_webhook_gets_200_and_a_forged_one_401(client: httpx.Client) -> None:
    answers = {p.stem: post_webhook(client, p.read_bytes()).status_code for p in WEBHOOKS}
    forged = {}
    for path in WEBHOOKS:
        body, headers = signed(path.read_bytes())
        altered = body.replace(b"whatsapp", b"WhatsApp")
        forged[path.stem] = client.post("/webhook", content=altered, headers=headers).status_code
    assert answers == dict.fromkeys(answers, 200)
    assert forged == dict.fromkeys(forged, 401)


@pytest.mark.parametrize("path", SENDS, ids=lambda p: p.stem)
def test_the_standin_accepts_every_documented_request(standin: StandinServer, path: Path) -> None:
    url = f"{standin.url}/v25.0/106540352242922/messages"
    response = httpx.post(
        url,
        json=json.loads(path.read_text()),
        headers={"Authorization": "Bearer test-access-token"},
    )
    assert response.status_code == 200, response.text
