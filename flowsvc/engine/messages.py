"""Graph API request bodies (meta-contract.md §5), with only Meta's keys and within Meta's limits.

Bodies are built from the typed template model, so engine-only fields (steps, set, compute, ...)
cannot leak. Texts are filled and truncated to Meta's limits here, titles are truncated too, so a
template that validates always yields bodies Meta accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.render import fill_capped, truncate
from flowsvc.engine.template import INITIAL, Message, Template

Fill = Callable[[str, int], str]
"""Fills a text's placeholders and keeps it within a code-point limit."""


def text_message(to: str, body: str) -> dict[str, Any]:
    """A plain text message; `body` is already filled and at most 4096 code points."""
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"preview_url": False, "body": body},
    }


def build(to: str, message: Message, fill: Fill, *, body: str | None = None) -> dict[str, Any]:
    """The request body for a template message; `body` overrides the message's own (a prompt)."""
    source = body if body is not None else (message.body or "")
    if message.type == "text":
        return text_message(to, fill(source, limits.MAX_TEXT_BODY))
    body_limit = (
        limits.MAX_BODY_WITH_BUTTONS if message.type == "button" else limits.MAX_BODY_WITH_LIST
    )
    interactive: dict[str, Any] = {"type": message.type}
    if message.header:
        interactive["header"] = {"type": "text", "text": fill(message.header, limits.MAX_HEADER)}
    interactive["body"] = {"text": fill(source, body_limit)}
    if message.footer:
        interactive["footer"] = {"text": fill(message.footer, limits.MAX_FOOTER)}
    interactive["action"] = (
        _button_action(message) if message.type == "button" else _list_action(message)
    )
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def step_messages(
    to: str, template: Template, step_name: str, values: Mapping[str, Any]
) -> tuple[dict[str, Any], ...]:
    """A step's messages, filled from `values`: `initial` sends the first message; other steps
    their prompt and/or their own message (a message without a body takes the prompt as body)."""

    def fill(text: str, limit: int) -> str:
        return fill_capped(text, values, limit, currency=template.currency)

    if step_name == INITIAL:
        return (build(to, template.first, fill),)
    step = template.step(step_name)
    message = step.message
    prompt = (text_message(to, fill(step.prompt, limits.MAX_TEXT_BODY)),) if step.prompt else ()
    if message is None or (message.type == "text" and message.body is None):
        return prompt
    if message.body is None:
        return (build(to, message, fill, body=step.prompt or ""),)
    return (*prompt, build(to, message, fill))


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
