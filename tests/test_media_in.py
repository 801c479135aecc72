"""Media and more in: a step that accepts images, documents, audio, video, locations or contact
cards stores what arrives (as Meta's webhook carries it) in the context; anything else it
cannot take gets the step's error text and the step again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from flowsvc.validation import validate_template
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.gateway_harness import (
    gateway_for_template,
    message,
    post_webhook,
    wait_until,
    webhook,
)
from tests.graph_standin import StandinServer

CUSTOMER = "16505551234"
ERROR = "Please send what I asked for."

CLAIM: dict[str, Any] = {
    "type": "text",
    "body": {"text": "Send us a photo of the damage."},
    "steps": {
        "initial": {
            "accept": "image",
            "context_key": "photo",
            "error_message": ERROR,
            "next_step": "where",
        },
        "where": {
            "prompt": "Where did it happen? Share a location.",
            "accept": ["location"],
            "context_key": "place",
            "error_message": ERROR,
            "next_step": "who",
        },
        "who": {
            "prompt": "Who should we call? Share a contact.",
            "accept": ["contacts"],
            "context_key": "contact",
            "next_step": "file",
        },
        "file": {
            "prompt": "Any document, voice note or video? Or type a note.",
            "accept": ["document", "audio", "video", "text"],
            "context_key": "file",
            "next_step": "done",
        },
        "done": {"prompt": "Thanks, claim {order_id} is filed.", "end_conversation": True},
    },
}


def raw(kind: str, content: Any) -> dict[str, Any]:
    """An inbound message of `kind` as Meta's webhook carries it."""
    return {
        "from": CUSTOMER,
        "id": f"wamid.IN{time.monotonic_ns()}",
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: content,
    }


IMAGE = {
    "id": "1479537139650973",
    "mime_type": "image/jpeg",
    "sha256": "SfInY9dVT5gW2d0VH1bf5Wg9pKZ6y6qRcz3Jkxa7vXI=",
    "caption": "the dent",
}
LOCATION = {"latitude": 52.52, "longitude": 13.405, "name": "Depot", "address": "1 Example St"}
CARDS = [
    {
        "name": {"formatted_name": "Carol Example", "first_name": "Carol"},
        "phones": [{"phone": "+1 555 123 0003", "wa_id": "15551230003", "type": "CELL"}],
    }
]
DOCUMENT = {
    "id": "9241562455929424",
    "mime_type": "application/pdf",
    "sha256": "abc=",
    "filename": "estimate.pdf",
}


def test_the_claim_template_is_valid() -> None:
    found = validate_template("claim", ["claim"], CLAIM, known_templates=())
    assert [v for v in found if not v.warning] == []


def test_a_step_that_accepts_a_bad_kind_is_rejected() -> None:
    menu = {**CLAIM, "steps": {**CLAIM["steps"], "who": {**CLAIM["steps"]["who"]}}}
    menu["steps"]["who"]["accept"] = ["contact"]
    found = validate_template("claim", ["claim"], menu, known_templates=())
    assert [(v.field, v.description) for v in found if not v.warning] == [
        (
            "menu_structure.steps.who.accept[0]",
            "is 'contact': must be one of text, image, document, audio, video, sticker, "
            "location, contacts (did you mean 'contacts'?)",
        )
    ]


@pytest.fixture
def graph() -> Iterator[StandinServer]:
    with StandinServer() as server:
        yield server


@pytest.fixture
def client(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[httpx.Client]:
    with gateway_for_template(stub, flowsvc_target, graph.url, "claim", ["claim"], CLAIM) as client:
        yield client


def send(
    client: httpx.Client, graph: StandinServer, inbound: dict[str, Any], replies: int
) -> list[Any]:
    """Post one inbound message; the bodies of the `replies` it gets."""
    before = len(graph.standin.accepted())
    assert post_webhook(client, webhook(inbound)).status_code == 200
    wait_until(lambda: len(graph.standin.accepted()) >= before + replies, 15)
    return [r.body for r in graph.standin.accepted()[before:]]


def texts(bodies: list[Any]) -> list[str]:
    return [b["text"]["body"] for b in bodies]


def test_a_claim_stores_photo_location_contact_and_document(
    client: httpx.Client, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    assert texts(send(client, graph, message(CUSTOMER, text="claim"), 1)) == [
        "Send us a photo of the damage."
    ]
    # Text where a photo is asked for: the step's error, then the step again.
    assert texts(send(client, graph, message(CUSTOMER, text="here"), 2)) == [
        ERROR,
        "Send us a photo of the damage.",
    ]
    # A sticker is not a photo either.
    sticker = raw("sticker", {"id": "1", "mime_type": "image/webp", "animated": False})
    assert texts(send(client, graph, sticker, 2))[0] == ERROR
    assert texts(send(client, graph, raw("image", IMAGE), 1)) == [
        "Where did it happen? Share a location."
    ]
    assert texts(send(client, graph, raw("location", LOCATION), 1)) == [
        "Who should we call? Share a contact."
    ]
    assert texts(send(client, graph, raw("contacts", CARDS), 1)) == [
        "Any document, voice note or video? Or type a note."
    ]
    [done] = texts(send(client, graph, raw("document", DOCUMENT), 1))
    assert done.startswith("Thanks, claim ")
    [result] = stub.ListResults(flow_pb2.ListResultsRequest()).results
    context = json_format.MessageToDict(result.context)
    assert context["photo"] == {
        "type": "image",
        "id": "1479537139650973",
        "mime_type": "image/jpeg",
        "caption": "the dent",
    }
    assert context["place"] == LOCATION
    assert context["contact"] == {
        "cards": [{"name": "Carol Example", "phones": ["+1 555 123 0003"]}]
    }
    assert context["file"] == {
        "type": "document",
        "id": "9241562455929424",
        "mime_type": "application/pdf",
        "filename": "estimate.pdf",
    }


def test_media_a_step_does_not_accept_gets_the_polite_reask(
    client: httpx.Client, graph: StandinServer
) -> None:
    send(client, graph, message(CUSTOMER, text="claim"), 1)
    send(client, graph, raw("image", IMAGE), 1)
    # The "where" step takes locations only; a photo there gets its error and the step again.
    assert texts(send(client, graph, raw("image", IMAGE), 2)) == [
        ERROR,
        "Where did it happen? Share a location.",
    ]
