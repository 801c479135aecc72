"""Hostile webhooks, correctly signed, through a real gateway and a real flowsvc: fields of the
wrong type or length, lone surrogates, too many updates, messages too large for a batch, batches
FlowService refuses whole, and a seeded fuzz loop over the fixture payloads. Never a 5xx, and a
200 never loses a message that was in the POST."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from flowsvc.settings import Settings as FlowsvcSettings
from gateway.meta_errors import graph_error, meta_error
from gateway.payload import parse
from gateway.verdict import classify
from menuflow.v1 import flow_pb2_grpc
from tests.database import processed_ids
from tests.gateway_harness import (
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    signed,
    webhook,
)
from tests.graph_standin import ServerThread, StandinServer
from tests.payloads import load_webhook, webhook_names
from tests.servers import running_flowsvc

MIB = 1024 * 1024
_customers = iter(range(10**6))


def customer() -> str:
    return f"1555{next(_customers):07d}"


def value_of(document: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = document["entry"][0]["changes"][0]["value"]
    return value


# Parsing: each field by its documented type, each item alone.


def test_a_lone_surrogate_in_a_text_body_is_repaired() -> None:
    parsed = parse(webhook(message("16505551234", text="caf\ud800e")))
    assert [m.text for m in parsed.messages] == ["caf?e"]
    parsed.messages[0].SerializeToString()


def test_a_boolean_error_code_is_not_a_code() -> None:
    document = load_webhook("status_failed")
    value_of(document)["statuses"][0]["errors"] = [{"code": True, "title": "x"}]
    assert [e.code for e in parse(document).statuses[0].errors] == [0]
    assert meta_error({"code": False}).code == 0
    body = {"error": {"code": True, "message": "confused"}}
    error, code = graph_error(body, 400, json.dumps(body).encode())
    assert code is None and error.title == "HTTP 400"
    # True == 1 in Python, and 1 is a retryable code: a boolean must not read as it.
    assert classify(400, json.dumps(body).encode(), attempts=1).kind == "failed"


def test_fields_longer_than_meta_sends_read_as_absent_and_the_others_still_count() -> None:
    good = message("16505551234", text="hi")
    long_id = message("16505551234", text="hi", message_id="wamid." + "A" * 300)
    long_sender = message("1" * 100, text="hi")
    long_text = message("16505551234", text="x" * 4097)
    parsed = parse(webhook(good, long_id, long_sender, long_text))
    assert [m.message_id for m in parsed.messages] == [good["id"], long_text["id"]]
    assert parsed.messages[1].unsupported_type == "text"  # not a text WhatsApp can carry
    assert parsed.skipped == 2


def test_a_contact_name_longer_than_meta_sends_is_left_out() -> None:
    document = webhook(message("16505551234", text="hi"))
    value_of(document)["contacts"][0]["profile"]["name"] = "N" * MIB
    assert parse(document).messages[0].contact_name == ""


# Through a real gateway and flowsvc.


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    server = StandinServer()
    with server:
        yield server


@pytest.fixture
def seeded(stub: flow_pb2_grpc.FlowServiceStub) -> flow_pb2_grpc.FlowServiceStub:
    seed_default_templates(stub)
    return stub


@pytest.fixture
def gateway(
    flowsvc_target: str, graph: StandinServer, seeded: flow_pb2_grpc.FlowServiceStub
) -> Iterator[ServerThread]:
    with running_gateway(gateway_settings(flowsvc_target, graph.url)) as server:
        yield server


@pytest.fixture
def client(gateway: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        yield client


def test_more_updates_than_meta_sends_in_one_post_get_413_and_nothing_recorded(
    client: httpx.Client, database_url: str
) -> None:
    document = webhook(*(message(customer(), text="hi") for _ in range(1001)))
    response = post_webhook(client, document)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert processed_ids(database_url) == set()


def test_a_message_larger_than_a_batch_may_be_gets_413_before_anything_is_recorded(
    flowsvc_target: str, graph: StandinServer, seeded: object, database_url: str
) -> None:
    settings = gateway_settings(flowsvc_target, graph.url, batch_max_bytes=2048)
    small, large = message(customer(), text="hi"), message(customer(), text="x" * 4000)
    with running_gateway(settings) as gateway, httpx.Client(base_url=gateway.url) as client:
        assert post_webhook(client, webhook(small, large)).status_code == 413
        assert processed_ids(database_url) == set()
        assert post_webhook(client, webhook(small)).status_code == 200
    assert processed_ids(database_url) == {small["id"]}


def test_a_batch_flowsvc_refuses_whole_is_split_and_no_message_that_got_a_200_is_lost(
    database_url: str, graph: StandinServer
) -> None:
    # FlowService takes at most 64 KiB a call, the gateway batches up to 1 MiB: a backlog of
    # 4 KB messages makes calls FlowService refuses whole (RESOURCE_EXHAUSTED).
    flowsvc_settings = FlowsvcSettings(
        database_url=database_url,
        listen="127.0.0.1:0",
        grace_seconds=1,
        max_request_bytes=64 * 1024,
    )
    hostile = load_webhook("several_messages")
    value = value_of(hostile)
    value["metadata"]["phone_number_id"] = "1" * MIB  # copied into each message, Meta's never
    value["messages"] = [dict(value["messages"][0], id=f"wamid.H{i}") for i in range(20)]
    innocent = [webhook(message(customer(), text="x" * 4000)) for _ in range(60)]
    with running_flowsvc(flowsvc_settings) as flowsvc:
        target = f"127.0.0.1:{flowsvc.port}"
        settings = gateway_settings(target, graph.url, concurrency=1)
        with (
            running_gateway(settings) as gateway,
            httpx.Client(base_url=gateway.url, timeout=60) as client,
        ):

            def post(document: dict[str, Any]) -> int:
                return post_webhook(client, document).status_code

            with ThreadPoolExecutor(max_workers=16) as pool:
                answers = list(pool.map(post, [hostile, *innocent]))
    assert set(answers) == {200}
    recorded = processed_ids(database_url)
    assert {value_of(d)["messages"][0]["id"] for d in innocent} <= recorded
    assert not any(i.startswith("wamid.H") for i in recorded)  # not Meta's: skipped


# The fuzz loop: every fixture, mutated at a random JSON path.

HUGE = "A" * MIB


def _hostile_value(rng: random.Random, current: Any) -> Any:
    small = len(json.dumps(current)) < 4096
    many = json.loads(json.dumps([current] * (1001 if small else 2)))  # copies, not one shared
    choices: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        2**63,
        10**4000,
        1.5,
        float("nan"),
        float("inf"),
        float("-inf"),
        "",
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfffy",
        HUGE,
        [],
        {},
        many,
        {"nested": current},
        "wamid." + "\ud83d",
    ]
    return rng.choice(choices)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _paths(child, (*path, index))


def _mutate(rng: random.Random, document: Any) -> Any:
    path = rng.choice(list(_paths(document)))
    if not path:
        return _hostile_value(rng, document)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = _hostile_value(rng, parent[path[-1]])
    return document


def _body(rng: random.Random, document: Any) -> bytes:
    body = json.dumps(document)  # NaN and Infinity as JavaScript spells them; \ud800 escaped
    if rng.random() < 0.2:  # duplicate keys: the first of two "id"s, "from"s or "type"s
        key = rng.choice(['"id": ', '"from": ', '"type": '])
        body = body.replace(key, f'{key}"duplicate", {key}', 1)
    return body.encode()


def test_fuzzed_signed_webhooks_never_get_a_5xx_nor_lose_a_valid_message(
    client: httpx.Client, gateway: ServerThread, database_url: str
) -> None:
    rng = random.Random(21)
    names = webhook_names()
    tried, server_errors, expected = 0, 0, set[str]()
    deadline = time.monotonic() + 12
    while time.monotonic() < deadline and tried < 400:
        document = load_webhook(rng.choice(names))
        for _ in range(rng.randint(1, 3)):
            document = _mutate(rng, document)
        valid = message(customer(), text="hi")
        if isinstance(document, dict) and isinstance(document.get("entry"), list):
            document["entry"].append(webhook(valid)["entry"][0])  # a valid message, same POST
        else:
            valid = {}
        body, headers = signed(_body(rng, document))
        response = client.post("/webhook", content=body, headers=headers)
        tried += 1
        server_errors += response.status_code >= 500
        if response.status_code == 200 and valid:
            expected.add(valid["id"])
    lost = expected - processed_ids(database_url)
    print(f"fuzz: {tried} requests, {server_errors} 5xx, {len(expected)} 200s, {len(lost)} lost")
    assert (server_errors, lost) == (0, set())
    assert len(expected) > tried / 3  # most mutations leave the POST readable
    assert gateway.server.started and client.get("/healthz").status_code == 200
