"""`make chat` shows every message shape the bot sends readably: media with caption, filename and
link or media id, media headers, location requests, call-to-action URL buttons, locations and
contact cards (bodies as Meta documents them)."""

from __future__ import annotations

from typing import Any

import pytest

from menuflow.chat import render

IMAGE = {"link": "https://shop.example.com/latte.jpg", "caption": "Our latte"}
CASES: list[tuple[dict[str, Any], str]] = [
    (
        {"type": "image", "image": IMAGE},
        "[🖼 image: Our latte] <https://shop.example.com/latte.jpg>",
    ),
    (
        {"type": "document", "document": {"id": "1013859600285441", "filename": "invoice.pdf"}},
        "[📄 document invoice.pdf] <media id 1013859600285441>",
    ),
    (
        {"type": "video", "video": {"link": "https://x.example/v.mp4"}},
        "[🎬 video] <https://x.example/v.mp4>",
    ),
    ({"type": "audio", "audio": {"id": "42"}}, "[🔊 audio] <media id 42>"),
    ({"type": "sticker", "sticker": {"id": "7"}}, "[🏷 sticker] <media id 7>"),
    (
        {
            "type": "location",
            "location": {
                "latitude": 40.4168,
                "longitude": -3.7038,
                "name": "Shop",
                "address": "Sol 1",
            },
        },
        "📍 Shop, Sol 1 (40.4168, -3.7038)",
    ),
    (
        {
            "type": "contacts",
            "contacts": [
                {"name": {"formatted_name": "Ana Díaz"}, "phones": [{"phone": "+34 600 111 222"}]}
            ],
        },
        "👤 Ana Díaz: +34 600 111 222",
    ),
    (
        {
            "type": "interactive",
            "interactive": {
                "type": "location_request_message",
                "body": {"text": "Where shall we deliver?"},
                "action": {"name": "send_location"},
            },
        },
        "Where shall we deliver?\n"
        "  [📍 Send location] (a WhatsApp button: the terminal sends text only)",
    ),
    (
        {
            "type": "interactive",
            "interactive": {
                "type": "cta_url",
                "body": {"text": "Your order is ready to pay."},
                "footer": {"text": "Secure payment"},
                "action": {
                    "name": "cta_url",
                    "parameters": {
                        "display_text": "Pay now",
                        "url": "https://pay.example.com/K7M4Q2",
                    },
                },
            },
        },
        "Your order is ready to pay.\n_Secure payment_\n  [🔗 Pay now] <https://pay.example.com/K7M4Q2>",
    ),
    (
        {
            "type": "interactive",
            "interactive": {
                "type": "button",
                "header": {"type": "image", "image": {"link": "https://shop.example.com/menu.jpg"}},
                "body": {"text": "Welcome!"},
                "action": {
                    "buttons": [{"type": "reply", "reply": {"id": "order", "title": "Order"}}]
                },
            },
        },
        "[🖼 image] <https://shop.example.com/menu.jpg>\nWelcome!\n  [1] Order",
    ),
]


@pytest.mark.parametrize(
    ("body", "shown"),
    CASES,
    ids=[
        body["type"] if body["type"] != "interactive" else body["interactive"]["type"]
        for body, _ in CASES
    ],
)
def test_chat_shows_each_message_readably(body: dict[str, Any], shown: str) -> None:
    assert render(body)[0] == shown


def test_a_media_header_keeps_the_buttons_tappable() -> None:
    _, options = render(CASES[-1][0])
    assert options == [("order", "Order")]
