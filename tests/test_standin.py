"""The Graph API stand-in checks bodies as Meta documents them and fails exactly as told."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.graph_standin import THROTTLING_CODES, StandinServer
from tests.payloads import SENDS, load_send

TOKEN = "test-access-token"
PATH = "/v25.0/106540352242922/messages"


def text(body: str = "Hello") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def buttons(*titles: str, body: str = "Pick one") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": f"b{i}", "title": title}}
                    for i, title in enumerate(titles)
                ]
            },
        },
    }


def listing(*sections: list[str], button: str = "Options") -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Choose"},
            "action": {
                "button": button,
                "sections": [
                    {
                        "title": f"Section {n}",
                        "rows": [{"id": f"s{n}r{i}", "title": t} for i, t in enumerate(rows)],
                    }
                    for n, rows in enumerate(sections)
                ],
            },
        },
    }


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(graph: StandinServer) -> Iterator[httpx.Client]:
    graph.standin.reset()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=graph.url, headers=headers, timeout=5) as client:
        yield client


@pytest.mark.parametrize(
    "name", sorted(p.stem for p in SENDS.glob("*_request.json")), ids=lambda n: n
)
def test_meta_documented_requests_are_accepted(client: httpx.Client, name: str) -> None:
    response = client.post(PATH, json=load_send(name))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == {"success": True} or answer["messages"][0]["id"].startswith("wamid.")


def test_a_message_is_answered_like_meta_and_recorded(graph: StandinServer, client: httpx.Client):
    response = client.post(PATH, json=text("Hi"))
    assert response.status_code == 200
    answer = response.json()
    assert answer["messaging_product"] == "whatsapp"
    assert answer["contacts"] == [{"input": "16505551234", "wa_id": "16505551234"}]
    [record] = graph.standin.accepted()
    assert answer["messages"] == [{"id": record.wa_message_id}]
    assert record.body == text("Hi")
    assert record.phone_number_id == "106540352242922"


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = body
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[last] = value
    return body


INVALID = [
    ("text_too_long", text("x" * 4097), 131009),
    ("text_missing", _with(text(), "text", {}), 100),
    ("no_recipient", _with(text(), "to", ""), 100),
    ("wrong_product", _with(text(), "messaging_product", "sms"), 100),
    ("engine_field_leaked", _with(text(), "steps", {}), 100),
    ("four_buttons", buttons("A", "B", "C", "D"), 131009),
    ("no_buttons", buttons(), 131009),
    ("button_title_21", buttons("x" * 21), 131009),
    ("button_titles_repeat", buttons("Same", "Same"), 131009),
    ("button_body_1025", buttons("A", body="x" * 1025), 131009),
    (
        "button_id_spaces",
        _with(buttons("A"), "interactive.action.buttons.0.reply.id", " padded "),
        131009,
    ),
    ("footer_61", _with(buttons("A"), "interactive.footer", {"text": "x" * 61}), 131009),
    (
        "header_61",
        _with(buttons("A"), "interactive.header", {"type": "text", "text": "x" * 61}),
        131009,
    ),
    ("eleven_rows", listing(["r"] * 6, ["s"] * 5), 131009),
    ("row_title_25", listing(["x" * 25]), 131009),
    ("list_button_21", listing(["a"], button="x" * 21), 131009),
    ("eleven_sections", listing(*[["r"]] * 11), 131009),
    ("section_without_rows", listing([]), 131009),
    (
        "untitled_section_of_two",
        _with(listing(["a"], ["b"]), "interactive.action.sections.0.title", None),
        100,
    ),
    (
        "list_image_header",
        _with(listing(["a"]), "interactive.header", {"type": "image", "image": {"id": "1"}}),
        131009,
    ),
    ("unknown_type", _with(text(), "type", "image"), 100),
]


@pytest.mark.parametrize(("body", "code"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_bodies_meta_refuses_get_metas_400(client: httpx.Client, body: Any, code: int) -> None:
    response = client.post(PATH, json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_a_list_of_ten_rows_in_two_sections_is_fine(client: httpx.Client) -> None:
    body = listing(["a", "b", "c", "d", "e"], ["f", "g", "h", "i", "j"])
    assert client.post(PATH, json=body).status_code == 200


@pytest.mark.parametrize(
    ("path", "headers", "status", "code"),
    [
        ("/v25.0/1/messages", {"Authorization": "Bearer wrong"}, 401, 190),
        ("/v25.0/1/messages", {"Authorization": ""}, 401, 190),
        ("/v19.0/1/messages", {}, 400, 100),
        ("/v25.0/1/media", {}, 400, 100),
    ],
    ids=["wrong_token", "no_token", "wrong_version", "wrong_path"],
)
def test_requests_to_the_wrong_place_or_without_the_token_are_refused(
    client: httpx.Client, path: str, headers: dict[str, str], status: int, code: int
) -> None:
    response = client.post(path, json=text(), headers=headers)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


@pytest.mark.parametrize("code", THROTTLING_CODES, ids=str)
def test_throttling_faults_answer_429_with_the_code(
    graph: StandinServer, client: httpx.Client, code: int
) -> None:
    graph.standin.fail(code=code, count=2)
    statuses = [client.post(PATH, json=text()).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert graph.standin.received()[0].error_code == code


def test_a_fault_for_seconds_ends_by_itself(graph: StandinServer, client: httpx.Client) -> None:
    graph.standin.fail(status=503, seconds=0.3)
    assert client.post(PATH, json=text()).status_code == 503
    time.sleep(0.35)
    assert client.post(PATH, json=text()).status_code == 200


def test_a_fault_for_one_recipient_spares_the_others(
    graph: StandinServer, client: httpx.Client
) -> None:
    graph.standin.fail(code=131056, to="16505551234")
    other = _with(text(), "to", "4915112345678")
    assert client.post(PATH, json=text()).status_code == 429
    assert client.post(PATH, json=other).status_code == 200


def test_faults_spare_read_receipts_unless_asked(
    graph: StandinServer, client: httpx.Client
) -> None:
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}
    graph.standin.fail(status=500)
    assert client.post(PATH, json=read).json() == {"success": True}
    graph.standin.heal()
    graph.standin.fail(status=500, reads=True, count=1)
    assert client.post(PATH, json=read).status_code == 500


def test_a_dropped_connection_gets_no_answer(graph: StandinServer, client: httpx.Client) -> None:
    graph.standin.fail("drop", count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(PATH, json=text())
    assert client.post(PATH, json=text()).status_code == 200
    assert [r.status for r in graph.standin.received()] == [0, 200]


def test_a_slow_answer_comes_late(graph: StandinServer, client: httpx.Client) -> None:
    graph.standin.fail("slow", delay=0.3, count=1)
    started = time.monotonic()
    assert client.post(PATH, json=text()).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_it_is_controlled_over_http(graph: StandinServer, client: httpx.Client) -> None:
    assert client.post("/_standin/faults", json={"code": 130429, "count": 1}).status_code == 200
    assert client.post(PATH, json=text()).status_code == 429
    assert client.post(PATH, json=text()).status_code == 200
    records = client.get("/_standin/requests").json()
    assert [(r["status"], r["error_code"]) for r in records] == [(429, 130429), (200, None)]
    assert len(client.get("/_standin/requests", params={"since": 1}).json()) == 1
    assert client.delete("/_standin/requests").status_code == 204
    assert client.get("/_standin/requests").json() == []
