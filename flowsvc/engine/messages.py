"""Graph API request bodies (meta-contract.md §5), with only Meta's keys and within Meta's limits.

Bodies are built from the typed template model, so engine-only fields (steps, set, compute, ...)
cannot leak. Texts are filled and truncated to Meta's limits here, titles are truncated too, so a
template that validates always yields bodies Meta accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.render import fill_capped, fill_url, truncate
from flowsvc.engine.template import (
    CTA_URL,
    INITIAL,
    LOCATION_REQUEST,
    Media,
    Message,
    Step,
    Template,
)

LANGUAGE_KEY = "language"
"""The context key holding the customer's language (a translations key of the template)."""
Bodies = tuple[dict[str, Any], ...]
"""Graph API request bodies, in the order they are sent."""
Fill = Callable[[str, int], str]
"""Fills a text's placeholders and keeps it within a code-point limit."""
FillUrl = Callable[[str], str]
"""Fills a URL's placeholders, percent-encoded."""


@dataclass(slots=True)  # not frozen: one is built per message, and frozen makes __init__ slower
class Replies:
    """What one customer is sent: bodies addressed to `to`, with their name for {contact_name}."""

    to: str
    contact_name: str
    config: EngineConfig  # menuflow's own words (the error text of a step without error_message)

    def step(self, template: Template, step_name: str, context: Mapping[str, Any]) -> Bodies:
        """The messages of a step as its context renders them (sent on entry and when re-asked),
        in the customer's language (context key `language`) when the template is translated."""
        spoken = template.speaking(context.get(LANGUAGE_KEY))
        return step_messages(self.to, spoken, step_name, self._values(context))

    def error(self, template: Template, step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
        """The text sent when a reply to `step` is not accepted, filled like the step's messages."""
        language = context.get(LANGUAGE_KEY)
        step = template.speaking(language).steps.get(step.name, step)
        text = step.error_message or template.own_text(
            language, "invalid", self.config.text(language, "invalid")
        )
        body = fill_capped(
            text, self._values(context), limits.MAX_TEXT_BODY, currency=template.currency
        )
        return text_message(self.to, body)

    def text(self, body: str) -> dict[str, Any]:
        """One of the engine's own texts (EngineConfig's), within Meta's limit."""
        return text_message(self.to, truncate(body, limits.MAX_TEXT_BODY))

    def _values(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """The context plus built-ins, for placeholders."""
        if not self.contact_name:
            return context
        return {**context, "contact_name": self.contact_name}


def text_message(to: str, body: str) -> dict[str, Any]:
    """A plain text message; `body` is already filled and at most 4096 code points."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def build(
    to: str,
    message: Message,
    fill: Fill,
    *,
    body: str | None = None,
    fill_link: FillUrl = lambda url: url,
) -> dict[str, Any]:
    """The request body for a template message; `body` overrides the message's own (a prompt)."""
    source = body if body is not None else (message.body or "")
    if message.media is not None:
        return media_message(to, message.media, fill)
    if message.type == "text":
        return text_message(to, fill(source, limits.MAX_TEXT_BODY))
    body_limit = (
        limits.MAX_BODY_WITH_LIST if message.type == "list" else limits.MAX_BODY_WITH_BUTTONS
    )
    interactive: dict[str, Any] = {"type": message.type}
    if message.header_media is not None:
        media = message.header_media
        interactive["header"] = {"type": media.type, media.type: _media_object(media, fill)}
    elif message.header:
        interactive["header"] = {"type": "text", "text": fill(message.header, limits.MAX_HEADER)}
    interactive["body"] = {"text": fill(source, body_limit)}
    if message.footer:
        interactive["footer"] = {"text": fill(message.footer, limits.MAX_FOOTER)}
    if message.type == "button":
        interactive["action"] = _button_action(message)
    elif message.type == CTA_URL:
        label = truncate(message.cta_text, limits.MAX_CTA_DISPLAY_TEXT)
        url = fill_link(message.cta_url)
        interactive["action"] = {"name": CTA_URL, "parameters": {"display_text": label, "url": url}}
    elif message.type == LOCATION_REQUEST:
        interactive["action"] = {"name": "send_location"}
    else:
        interactive["action"] = _list_action(message)
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def media_message(to: str, media: Media, fill: Fill) -> dict[str, Any]:
    """An image, document, video, audio or sticker message, by media id or by link."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": media.type,
        media.type: _media_object(media, fill),
    }


def _media_object(media: Media, fill: Fill) -> dict[str, Any]:
    """Meta's media object: `id` or `link`, with a filled caption and a filename where set."""
    item: dict[str, Any] = {"id": media.id} if media.id else {"link": media.link or ""}
    if media.caption:
        item["caption"] = fill(media.caption, limits.MAX_CAPTION)
    if media.filename:
        item["filename"] = media.filename
    return item


def step_messages(to: str, template: Template, step_name: str, values: Mapping[str, Any]) -> Bodies:
    """A step's messages, filled from `values`: `initial` sends the first message; other steps
    their prompt and/or their own message (a message without a body takes the prompt as body)."""

    def fill(text: str, limit: int) -> str:
        return fill_capped(text, values, limit, currency=template.currency)

    def fill_link(url: str) -> str:
        return fill_url(url, values)

    if step_name == INITIAL:
        return (build(to, template.first, fill),)
    step = template.step(step_name)
    message = step.message
    prompt = (text_message(to, fill(step.prompt, limits.MAX_TEXT_BODY)),) if step.prompt else ()
    if message is None or (message.type == "text" and message.body is None):
        return prompt
    if message.media is not None:
        return (*prompt, build(to, message, fill))
    if message.body is None:
        return (build(to, message, fill, body=step.prompt or "", fill_link=fill_link),)
    return (*prompt, build(to, message, fill, fill_link=fill_link))


def _button_action(message: Message) -> dict[str, Any]:
    return {
        "buttons": [
            {
                "type": "reply",
                "reply": {
                    "id": button.id,
                    "title": truncate(button.title, limits.MAX_BUTTON_TITLE),
                },
            }
            for button in message.buttons[: limits.MAX_BUTTONS]
        ]
    }


def _list_action(message: Message) -> dict[str, Any]:
    label = truncate(message.list_button or "Options", limits.MAX_LIST_BUTTON)
    sections = []
    for section in message.sections[: limits.MAX_SECTIONS]:
        rows = []
        for row in section.rows:
            item = {"id": row.id, "title": truncate(row.title, limits.MAX_ROW_TITLE)}
            if row.description:
                item["description"] = truncate(row.description, limits.MAX_ROW_DESCRIPTION)
            rows.append(item)
        # Meta marks the section title required; the list button's label stands in for it.
        title = truncate(section.title or label, limits.MAX_SECTION_TITLE)
        sections.append({"title": title, "rows": rows})
    return {"button": label, "sections": sections}
