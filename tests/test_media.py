"""Media out: image, document, video, audio and sticker messages and media headers, by link or
media id, built by the engine, checked at write time, accepted by the Graph API stand-in."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowsvc.engine.messages import step_messages
from flowsvc.engine.template import load_template
from flowsvc.validation import validate_template
from menuflow.v1 import flow_pb2_grpc
from tests.gateway_harness import (
    gateway_for_template,
    message,
    post_webhook,
    wait_until,
    webhook,
)
from tests.graph_standin import Invalid, StandinServer, validate

CUSTOMER = "16505551234"
PHOTO = "https://cdn.example.com/menu.jpg"
MEDIA_ID = "1013859600285441"


def button(button_id: str, title: str, **values: Any) -> dict[str, Any]:
    return {"type": "reply", "reply": {"id": button_id, "title": title}, "set": values}


DISHES: dict[str, Any] = {
    "type": "button",
    "header": {"type": "image", "image": {"link": PHOTO}},
    "body": {"text": "Today's menu, {contact_name}"},
    "action": {
        "buttons": [
            button("photo", "Pasta photo", dish="Pasta"),
            button("invoice", "Invoice"),
            button("clip", "Kitchen video"),
        ]
    },
    "steps": {
        "initial": {"next_steps": {"photo": "photo", "invoice": "invoice", "clip": "clip"}},
        "photo": {
            "prompt": "Here it is:",
            "type": "image",
            "image": {"link": "https://cdn.example.com/pasta.jpg", "caption": "Our {dish} today"},
            "end_conversation": True,
            "save_result": False,
        },
        "invoice": {
            "type": "document",
            "document": {
                "id": MEDIA_ID,
                "filename": "invoice.pdf",
                "caption": "Invoice for {contact_name}",
            },
            "end_conversation": True,
            "save_result": False,
        },
        "clip": {
            "type": "video",
            "video": {"id": MEDIA_ID},
            "end_conversation": True,
            "save_result": False,
        },
    },
}


def problems(menu: dict[str, Any]) -> list[tuple[str, str]]:
    found = validate_template("dishes", ["dishes"], menu, known_templates=())
    return [(v.field, v.description) for v in found if not v.warning]


def edited(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    menu = copy.deepcopy(DISHES)
    holder: Any = menu
    for part in path[:-1]:
        holder = holder[part]
    holder[path[-1]] = value
    return menu


def envelope(kind: str, media: dict[str, Any]) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": kind,
        kind: media,
    }


def test_the_media_template_is_valid() -> None:
    assert problems(DISHES) == []


@pytest.mark.parametrize(
    ("kind", "media"),
    [
        ("image", {"link": PHOTO, "caption": "Hi {contact_name}"}),
        ("document", {"id": MEDIA_ID, "filename": "menu.pdf", "caption": "Menu"}),
        ("video", {"link": "https://cdn.example.com/a.mp4", "caption": "Kitchen"}),
        ("audio", {"id": MEDIA_ID}),
        ("sticker", {"link": "https://cdn.example.com/s.webp"}),
    ],
)
def test_every_media_type_is_built_as_meta_documents_it(kind: str, media: dict[str, Any]) -> None:
    menu = edited(("steps", "clip"), {"type": kind, kind: media, "end_conversation": True})
    assert problems(menu) == []
    template = load_template("dishes", 1, menu)
    [body] = step_messages(CUSTOMER, template, "clip", {"contact_name": "Ana"})
    filled = {k: v.replace("{contact_name}", "Ana") for k, v in media.items()}
    assert body == envelope(kind, filled)
    assert validate(body) == "message"


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (("steps", "clip", "video"), {"id": MEDIA_ID, "link": PHOTO}, "video", "exactly one"),
        (("steps", "clip", "video"), {}, "video", "exactly one"),
        (("steps", "clip", "video"), {"link": "ftp://x/y.mp4"}, "video.link", "http(s) URL"),
        (("steps", "clip", "video"), {"id": MEDIA_ID, "filename": "a.mp4"}, "video", "filename"),
        (("steps", "clip", "type"), "audio", "audio", "is missing"),
        (("steps", "photo", "image", "caption"), "x" * 1025, "image.caption", "1024"),
        (("steps", "photo", "image", "caption"), "A {nope}", "image.caption", "nope"),
        (("steps", "invoice", "document", "filename"), "a/b.pdf", "filename", "plain file"),
        (("steps", "photo", "body"), {"text": "hi"}, "photo.body", "image.caption"),
        (("header",), {"type": "sticker", "sticker": {"id": "1"}}, "header.type", "'document'"),
        (("header", "image"), {"link": PHOTO, "caption": "x"}, "header.image", "caption"),
    ],
)
def test_a_broken_media_message_is_rejected_with_its_field_path(
    path: tuple[Any, ...], value: Any, field: str, words: str
) -> None:
    found = problems(edited(path, value))
    assert any(field in where and words in what for where, what in found), found


def test_an_audio_message_takes_no_caption() -> None:
    clip = {"type": "audio", "audio": {"id": "1", "caption": "no"}, "end_conversation": True}
    found = problems(edited(("steps", "clip"), clip))
    assert found == [
        (
            "menu_structure.steps.clip.audio.caption",
            "unknown key 'caption': the keys allowed here are id, link",
        )
    ]


def test_a_list_message_takes_only_a_text_header() -> None:
    menu = {
        "type": "list",
        "header": {"type": "image", "image": {"link": PHOTO}},
        "body": {"text": "Pick"},
        "action": {
            "button": "Open",
            "sections": [{"title": "A", "rows": [{"id": "a", "title": "A"}]}],
        },
        "steps": {
            "initial": {"next_steps": {"a": "done"}},
            "done": {"prompt": "ok", "end_conversation": True},
        },
    }
    found = problems(menu)
    assert any(
        where == "menu_structure.header.type" and "only text headers" in what
        for where, what in found
    ), found


@pytest.mark.parametrize(
    "body",
    [
        envelope("image", {"id": "1", "link": PHOTO}),
        envelope("audio", {"id": "1", "caption": "no captions on audio"}),
        envelope("image", {"link": PHOTO, "filename": "x.jpg"}),
        envelope("image", {"link": PHOTO, "caption": "x" * 1025}),
        envelope("sticker", {"link": "not a url"}),
    ],
)
def test_the_standin_rejects_media_bodies_meta_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        validate(body)


def test_the_standin_rejects_a_media_header_on_a_list() -> None:
    body = {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "header": {"type": "image", "image": {"link": PHOTO}},
            "body": {"text": "Pick"},
            "action": {"button": "Open", "sections": [{"rows": [{"id": "a", "title": "A"}]}]},
        },
    }
    with pytest.raises(Invalid):
        validate(body)


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[httpx.Client]:
    with gateway_for_template(
        stub, flowsvc_target, graph.url, "dishes", ["dishes"], DISHES
    ) as client:
        yield client


def walk(
    client: httpx.Client, graph: StandinServer, customer: str, tap: str, title: str
) -> list[Any]:
    for step in ({"text": "dishes"}, {"button": (tap, title)}):
        before = len(graph.standin.accepted())
        assert post_webhook(client, webhook(message(customer, **step))).status_code == 200
        wait_until(lambda n=before: len(graph.standin.accepted()) > n, 15)
    return [r.body for r in graph.standin.accepted() if r.body["to"] == customer]


def test_a_customer_gets_the_photo_header_and_a_captioned_photo(
    client: httpx.Client, graph: StandinServer
) -> None:
    bodies = walk(client, graph, CUSTOMER, "photo", "Pasta photo")
    wait_until(lambda: len([r for r in graph.standin.accepted() if r.body["to"] == CUSTOMER]) >= 3)
    bodies = [r.body for r in graph.standin.accepted() if r.body["to"] == CUSTOMER]
    menu, prompt, photo = bodies
    assert menu["interactive"]["header"] == {"type": "image", "image": {"link": PHOTO}}
    assert menu["interactive"]["body"] == {"text": "Today's menu, Customer 1234"}
    assert prompt["text"]["body"] == "Here it is:"
    assert photo == envelope(
        "image", {"link": "https://cdn.example.com/pasta.jpg", "caption": "Our Pasta today"}
    )


def test_a_customer_gets_a_document_by_media_id_with_its_filename(
    client: httpx.Client, graph: StandinServer
) -> None:
    customer = "16505550002"
    bodies = walk(client, graph, customer, "invoice", "Invoice")
    assert bodies[-1] == {
        **envelope(
            "document",
            {"id": MEDIA_ID, "filename": "invoice.pdf", "caption": "Invoice for Customer 0002"},
        ),
        "to": customer,
    }
