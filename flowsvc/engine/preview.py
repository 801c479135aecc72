"""A template version step by step as WhatsApp shows it: each step's Graph bodies, filled from
sample context, and where each of its choices leads. Pure: the same builders as a conversation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flowsvc.engine import built
from flowsvc.engine.messages import step_messages
from flowsvc.engine.render import placeholder_names
from flowsvc.engine.template import Template

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


def preview(template: Template, context: Mapping[str, Any]) -> list[PreviewStep]:
    """Every step of `template`, in the order a customer meets them (Template.step_order)."""
    values = {**SAMPLES, **context}
    return [_step(template, name, values) for name in template.step_order()]


def _step(template: Template, name: str, values: Mapping[str, Any]) -> PreviewStep:
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
        shown = built.page(spec, values, 0, buttons=answering.type == "button", items=items)
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
        texts += [answering.header or "", answering.body or "", answering.footer or ""]
    missing = sorted({n for text in texts for n in placeholder_names(text)} - set(values))
    return PreviewStep(
        step=name,
        messages=step_messages(PREVIEW_RECIPIENT, template, name, values, items=items),
        choices=choices,
        next_step=step.next_step or "",
        input=step.validation.kind if step.validation is not None else "",
        context_key=step.context_key or "",
        end_conversation=step.end_conversation,
        missing_placeholders=tuple(missing),
    )
