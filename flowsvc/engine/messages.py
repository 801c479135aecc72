"""Graph API request bodies (meta-contract.md §5), with only Meta's keys and within Meta's limits.

Bodies are built from the typed template model, so engine-only fields (steps, set, compute, ...)
cannot leak. Texts are filled and truncated to Meta's limits here, titles are truncated too, so a
template that validates always yields bodies Meta accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowsvc.engine import built, limits
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.render import fill_capped, fill_data, fill_url, truncate
from flowsvc.engine.template import (
    CTA_URL,
    FLOW,
    INITIAL,
    LOCATION_REQUEST,
    FlowSpec,
    Media,
    Message,
    Step,
    Template,
)

LANGUAGE_KEY = "language"
"""The context key holding the customer's language (a translations key of the template)."""
FLOW_TOKEN_KEY = "flow_token"
"""The context key holding the flow_token of the Flow message the conversation sent last: a
Flow reply carrying another token answers an older message and is not taken."""
FLOW_MESSAGE_VERSION = "3"  # Meta: "Must be 3"
Bodies = tuple[dict[str, Any], ...]
"""Graph API request bodies, in the order they are sent."""
Fill = Callable[[str, int], str]
"""Fills a text's placeholders and keeps it within a code-point limit."""
FillUrl = Callable[[str], str]
"""Fills a URL's placeholders, percent-encoded."""
FillData = Callable[[Any], Any]
"""Fills the placeholders of a Flow screen's data, keeping the context values' types."""


@dataclass(slots=True)  # not frozen: one is built per message, and frozen makes __init__ slower
class Replies:
    """What one customer is sent: bodies addressed to `to`, with their name for {contact_name}."""

    to: str
    contact_name: str
    config: EngineConfig  # menuflow's own words (the error text of a step without error_message)

    def step(
        self, template: Template, step_name: str, context: Mapping[str, Any], page: int = 0
    ) -> Bodies:
        """The messages of a step as its context renders them (sent on entry and when re-asked),
        in the customer's language (context key `language`) when the template is translated;
        `page`: which page of a menu built from data (built.py)."""
        language = context.get(LANGUAGE_KEY)
        spoken = template.speaking(language)
        answering = template.answering(step_name)
        words = built.ENGLISH  # only a menu built from data says words of its own
        if answering is not None and answering.built is not None:
            words = nav_words(template, self.config, language)
        values = self._values(context)
        return step_messages(self.to, spoken, step_name, values, page=page, words=words)

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

    def values(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """The context plus built-ins, for placeholders."""
        return self._values(context)

    def _values(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """The context plus built-ins, for placeholders."""
        if not self.contact_name:
            return context
        return {**context, "contact_name": self.contact_name}


def nav_words(template: Template, config: EngineConfig, language: object) -> built.NavWords:
    """What a built menu says itself (paging rows, their sections, the list button of buttons
    that became a list) in `language`: as the template words it (`texts`), else as the
    deployment does (its text sets; English: EngineConfig's)."""
    said = {
        key: template.own_text(language, key, config.text(language, key)) for key in built.NAV_KEYS
    }
    return built.NavWords(**said)


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
    fill_flow: FillData = lambda data: data,
    flow_token: str = "",
    page: built.BuiltPage | None = None,
    words: built.NavWords = built.ENGLISH,
) -> dict[str, Any]:
    """The request body for a template message; `body` overrides the message's own (a prompt);
    a Flow message carries `flow_token` and its screen's data filled by `fill_flow`; `page`: the
    rows or buttons of a menu built from data, which replace the message's own, with its own
    words in the customer's language (`words`)."""
    source = body if body is not None else (message.body or "")
    if message.media is not None:
        return media_message(to, message.media, fill)
    if message.type == "text" or (page is not None and not page.items):
        # A built menu with nothing to choose cannot be sent as one (Meta wants a row or button).
        return text_message(to, fill(source, limits.MAX_TEXT_BODY))
    kind = message.type
    if page is not None:
        kind = "list" if page.as_list else "button"
    body_limit = limits.MAX_BODY_WITH_LIST if kind == "list" else limits.MAX_BODY_WITH_BUTTONS
    interactive: dict[str, Any] = {"type": kind}
    if message.header_media is not None and kind != "list":  # lists take text headers only
        media = message.header_media
        interactive["header"] = {"type": media.type, media.type: _media_object(media, fill)}
    elif message.header:
        interactive["header"] = {"type": "text", "text": fill(message.header, limits.MAX_HEADER)}
    interactive["body"] = {"text": fill(source, body_limit)}
    if message.footer:
        interactive["footer"] = {"text": fill(message.footer, limits.MAX_FOOTER)}
    if page is not None:
        interactive["action"] = _built_action(message, page, words)
    elif message.type == "button":
        interactive["action"] = _button_action(message)
    elif message.type == CTA_URL:
        label = truncate(message.cta_text, limits.MAX_CTA_DISPLAY_TEXT)
        url = fill_link(message.cta_url)
        interactive["action"] = {"name": CTA_URL, "parameters": {"display_text": label, "url": url}}
    elif message.type == LOCATION_REQUEST:
        interactive["action"] = {"name": "send_location"}
    elif message.type == FLOW and message.flow is not None:
        parameters = flow_parameters(message.flow, flow_token, fill_flow)
        interactive["action"] = {"name": FLOW, "parameters": parameters}
    else:
        interactive["action"] = _list_action(message)
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "interactive",
        "interactive": interactive,
    }


def flow_parameters(flow: FlowSpec, token: str, fill_flow: FillData) -> dict[str, Any]:
    """Meta's action.parameters of a Flow message: version "3", the token, the Flow by id or
    name, its button's label, and the first screen with its data (navigate) or none
    (data_exchange: the Flow's endpoint answers with it)."""
    parameters: dict[str, Any] = {
        "flow_message_version": FLOW_MESSAGE_VERSION,
        "flow_token": token or "unused",
    }
    if flow.flow_id:
        parameters["flow_id"] = flow.flow_id
    else:
        parameters["flow_name"] = flow.flow_name or ""
    parameters["flow_cta"] = truncate(flow.cta, limits.MAX_FLOW_CTA)
    parameters["flow_action"] = flow.action
    if flow.action == "navigate":
        payload: dict[str, Any] = {"screen": flow.screen or ""}
        data = fill_flow(flow.data) if flow.data else None
        if data:  # Meta: data, when given, is a non-empty object
            payload["data"] = data
        parameters["flow_action_payload"] = payload
    if flow.mode:
        parameters["mode"] = flow.mode
    return parameters


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


def step_messages(
    to: str,
    template: Template,
    step_name: str,
    values: Mapping[str, Any],
    *,
    page: int = 0,
    items: list[Any] | None = None,
    words: built.NavWords = built.ENGLISH,
) -> Bodies:
    """A step's messages, filled from `values`: `initial` sends the first message; other steps
    their prompt and/or their own message (a message without a body takes the prompt as body).
    A menu built from data shows page `page` of its items (`items`: instead of the context's,
    for a preview), paged and labelled with `words` (nav_words: the customer's language)."""

    def fill(text: str, limit: int) -> str:
        return fill_capped(text, values, limit, currency=template.currency)

    def fill_link(url: str) -> str:
        return fill_url(url, values)

    def fill_flow(data: Any) -> Any:
        return fill_data(data, values, currency=template.currency)

    stored = values.get(FLOW_TOKEN_KEY)
    token = stored if isinstance(stored, str) else ""

    if step_name == INITIAL:
        shown = _page(template.first, values, page, items, words)
        return (build(to, template.first, fill, page=shown, words=words),)
    step = template.step(step_name)
    message = step.message
    prompt = (text_message(to, fill(step.prompt, limits.MAX_TEXT_BODY)),) if step.prompt else ()
    if message is None or (message.type == "text" and message.body is None):
        return prompt
    if message.media is not None:
        return (*prompt, build(to, message, fill))
    shown = _page(message, values, page, items, words)
    if message.body is None:
        body = step.prompt or ""
        sent = build(
            to,
            message,
            fill,
            body=body,
            fill_link=fill_link,
            fill_flow=fill_flow,
            flow_token=token,
            page=shown,
            words=words,
        )
        return (sent,)
    sent = build(
        to,
        message,
        fill,
        fill_link=fill_link,
        fill_flow=fill_flow,
        flow_token=token,
        page=shown,
        words=words,
    )
    return (*prompt, sent)


def _page(
    message: Message,
    values: Mapping[str, Any],
    number: int,
    items: list[Any] | None,
    words: built.NavWords,
) -> built.BuiltPage | None:
    if message.built is None:
        return None
    buttons = message.type == "button"
    return built.page(message.built, values, number, buttons=buttons, items=items, words=words)


def _built_action(message: Message, page: built.BuiltPage, words: built.NavWords) -> dict[str, Any]:
    """The buttons, or the list sections, of one page of a menu built from data: the items
    in one section, "Previous" and "More" in a section of their own (titled in `words`)."""
    spec = message.built
    if not page.as_list:
        return {
            "buttons": [
                {"type": "reply", "reply": {"id": option.id, "title": option.title}}
                for option in page.items
            ]
        }
    wanted = message.list_button if message.type == "list" else (spec and spec.list_button)
    label = truncate(wanted or words.choose, limits.MAX_LIST_BUTTON)
    section_title = truncate((spec and spec.section) or label, limits.MAX_SECTION_TITLE)

    def row(option: built.BuiltOption) -> dict[str, Any]:
        item = {"id": option.id, "title": option.title}
        if option.description:
            item["description"] = option.description
        return item

    sections: list[dict[str, Any]] = []
    if page.previous is not None:
        title = truncate(words.previous_section, limits.MAX_SECTION_TITLE)
        sections.append({"title": title, "rows": [row(page.previous)]})
    sections.append({"title": section_title, "rows": [row(option) for option in page.items]})
    if page.more is not None:
        title = truncate(words.more_section, limits.MAX_SECTION_TITLE)
        sections.append({"title": title, "rows": [row(page.more)]})
    return {"button": label, "sections": sections}


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
