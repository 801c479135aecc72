"""Meta's message templates (approved in WhatsApp Manager, not menuflow's workflow templates): the
only messages Meta delivers outside the 24-hour customer service window, sent as a Graph API
`type: template` body with the values of the template's parameters.

Header: one text parameter, or one image, video or document. Body: text parameters, positional
({{1}}, {{2}}, ... in order) or named ({{first_name}}: `name` set on every parameter). Buttons:
a quick reply's payload (it comes back in the customer's tap, where a step's next_steps can
take it) or the text appended to a URL button's address, each by the button's index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MediaKind = Literal["image", "video", "document"]


@dataclass(frozen=True)
class Media:
    """A header's image, video or document: a public link or an uploaded media id."""

    kind: MediaKind
    link: str = ""
    id: str = ""
    filename: str = ""  # documents only: the name the customer sees


@dataclass(frozen=True)
class Parameter:
    """One parameter's value; `name` for templates written with named parameters."""

    text: str | None = None
    media: Media | None = None
    name: str = ""


@dataclass(frozen=True)
class Button:
    """A template button's value, by its position in the template (0-9)."""

    index: int
    quick_reply_payload: str | None = None
    url_text: str | None = None


@dataclass(frozen=True)
class MessageTemplate:
    """An approved template by name and language, with its parameters' values."""

    name: str
    language: str
    header: tuple[Parameter, ...] = ()
    body: tuple[Parameter, ...] = ()
    buttons: tuple[Button, ...] = ()


def template_message(to: str, template: MessageTemplate) -> dict[str, Any]:
    """The Graph API request body that sends `template` to `to`."""
    components: list[dict[str, Any]] = []
    if template.header:
        components.append(
            {"type": "header", "parameters": [_parameter(p) for p in template.header]}
        )
    if template.body:
        components.append({"type": "body", "parameters": [_parameter(p) for p in template.body]})
    for button in sorted(template.buttons, key=lambda b: b.index):
        if button.quick_reply_payload is not None:
            sub_type, value = (
                "quick_reply",
                {"type": "payload", "payload": button.quick_reply_payload},
            )
        else:
            sub_type, value = "url", {"type": "text", "text": button.url_text or ""}
        components.append(
            {
                "type": "button",
                "sub_type": sub_type,
                "index": str(button.index),
                "parameters": [value],
            }
        )
    content: dict[str, Any] = {
        "name": template.name,
        "language": {"policy": "deterministic", "code": template.language},
    }
    if components:
        content["components"] = components
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": content,
    }


def _parameter(parameter: Parameter) -> dict[str, Any]:
    if parameter.media is not None:
        media = parameter.media
        source: dict[str, str] = {"id": media.id} if media.id else {"link": media.link}
        if media.kind == "document" and media.filename:
            source["filename"] = media.filename
        value: dict[str, Any] = {"type": media.kind, media.kind: source}
    else:
        value = {"type": "text", "text": parameter.text or ""}
    if parameter.name:
        value["parameter_name"] = parameter.name
    return value
