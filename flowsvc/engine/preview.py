"""A template version step by step as WhatsApp shows it: each step's Graph bodies, filled from
sample context, and where each of its choices leads. Pure: the same builders as a conversation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowsvc.engine import built
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.messages import LANGUAGE_KEY, nav_words, step_messages
from flowsvc.engine.render import placeholder_names
from flowsvc.engine.template import FlowSpec, Message, Template

DEFAULT_CONFIG = EngineConfig()

PREVIEW_RECIPIENT = "preview"
# What the engine itself fills in on the way (docs/templates.md): shown as samples when the
# request's context does not give them.
SAMPLES = {
    "order_id": "ABC234",
    "contact_name": "Customer",
    "recent_orders": "(the customer's recent orders)",
    "previous_selection": "(the option tapped)",
}


@dataclass(frozen=True)
class Choice:
    """A button or list row and the target it leads to ("" for none)."""

    id: str
    title: str
    description: str
    target: str


@dataclass(frozen=True)
class PreviewStep:
    """One step as the customer sees it on arriving."""

    step: str
    messages: tuple[dict[str, Any], ...]
    choices: tuple[Choice, ...]
    next_step: str
    input: str
    context_key: str
    end_conversation: bool
    missing_placeholders: tuple[str, ...]


def preview(
    template: Template, context: Mapping[str, Any], config: EngineConfig = DEFAULT_CONFIG
) -> list[PreviewStep]:
    """Every step of `template`, in the order a customer meets them (Template.step_order), in
    the language the context's `language` names (its translation and menuflow's own words in
    it: `config`'s), else as written."""
    values = {**SAMPLES, **context}
    language = values.get(LANGUAGE_KEY)
    words = nav_words(template, config, language)
    spoken = template.speaking(language)
    return [_step(spoken, name, values, words) for name in spoken.step_order()]


def _step(
    template: Template, name: str, values: Mapping[str, Any], words: built.NavWords
) -> PreviewStep:
    step = template.step(name)
    answering = template.answering(name)
    options = answering.options if answering is not None else ()
    choices = tuple(
        Choice(
            option.id,
            option.title,
            option.description or "",
            step.next_steps.get(option.id) or step.next_step or "",
        )
        for option in options
    )
    items: list[Any] | None = None
    if answering is not None and answering.built is not None:
        # A menu built from data: the context's items, or one sample item naming its fields.
        spec = answering.built
        items = built.items_of(spec, values) or built.sample_items(spec)
        buttons = answering.type == "button"
        shown = built.page(spec, values, 0, buttons=buttons, items=items, words=words)
        rows = [*shown.items, *(nav for nav in (shown.more,) if nav is not None)]
        choices = tuple(
            Choice(
                row.id,
                row.title,
                row.description or "",
                (step.next_step or "") if row is not shown.more else name,
            )
            for row in rows
        )
    texts = [step.prompt or ""]
    if answering is not None:
        texts += _texts(answering)
    missing = sorted({n for text in texts for n in placeholder_names(text)} - set(values))
    messages = step_messages(PREVIEW_RECIPIENT, template, name, values, items=items, words=words)
    taken = sorted(step.accepted)
    return PreviewStep(
        step=name,
        messages=messages,
        choices=choices,
        next_step=step.next_step or "",
        input=step.validation.kind if step.validation is not None else ", ".join(taken),
        context_key=step.context_key or "",
        end_conversation=step.end_conversation,
        missing_placeholders=tuple(missing),
    )


def _texts(message: Message) -> list[str]:
    """Every text of a message that placeholders fill: header, body and footer, media
    captions, the CTA's label and URL, and a Flow's label and first screen's data."""
    texts = [message.header or "", message.body or "", message.footer or ""]
    texts += [media.caption or "" for media in (message.media, message.header_media) if media]
    texts += [message.cta_text, message.cta_url]
    if message.flow is not None:
        texts += _flow_texts(message.flow)
    return texts


def _flow_texts(flow: FlowSpec) -> list[str]:
    found = [flow.cta]

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(flow.data)
    return found
