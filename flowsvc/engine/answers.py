"""What a customer's reply means for the step it answers: a target to move to, or a rejection.

Pure over the template and the message; the flow (flow.py) acts on the Answer. Rules
(docs/templates.md): a tap goes to next_steps[id], or to next_step when the step's message offers
the id; a typed option id or title counts as that tap; other typed text is validated input for
next_step, unless the step's message offers options and the step has no validation or lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowsvc.engine import inputs
from flowsvc.engine.expressions import evaluate, to_context
from flowsvc.engine.keywords import phrase
from flowsvc.engine.orders import normalize_reference
from flowsvc.engine.state import Inbound
from flowsvc.engine.template import FLOW, Option, Step, Template


@dataclass(frozen=True)
class Answer:
    """An accepted reply: the target it moves to, and what it puts into the context."""

    target: str
    value: Any = None
    title: str | None = None
    option: Option | None = None
    selection: str | None = None
    reference: str | None = None  # the value is an order reference still to be looked up
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rejection:
    """A reply the step does not accept."""

    stale: bool = False  # a tap on an option the step does not offer (an older message's)
    resend: bool = False  # send the step again after the error text


def interpret(
    template: Template, step_name: str, inbound: Inbound, *, flow_token: object = None
) -> Answer | Rejection:
    """What `inbound` (a tap, a typed text, media, a Flow's reply; not a command) means in
    `step_name`; `flow_token` is the token of the Flow message the conversation sent last."""
    step = template.step(step_name)
    answering = template.answering(step_name)
    options = answering.options if answering is not None else ()
    if inbound.selection_id is not None:
        return _tap(step, options, inbound.selection_id, inbound.selection_title)
    accepted = step.accepted
    if accepted and inbound.text is None:
        if inbound.unsupported_type not in accepted or step.next_step is None:
            return Rejection(resend=True)
        fields = dict(inbound.attachment or {})
        if inbound.unsupported_type != FLOW:
            return Answer(step.next_step, value=fields)
        if not inbound.flow_token or inbound.flow_token != flow_token:
            return Rejection(stale=True)  # it answers an older Flow message: not this one
        extra = {key: fields.get(key) for key in step.flow_fields}
        return Answer(step.next_step, value=fields, extra=extra)
    text = inbound.text or ""
    chosen = matching_option(text, options, step.next_steps)
    if chosen is not None:
        return _tap(step, options, chosen, "")
    free_text = not options or step.validation is not None or step.lookup is not None
    if accepted and "text" not in accepted:
        return Rejection(resend=True)
    if step.next_step is None or not free_text:
        return Rejection(resend=True)
    if step.lookup == "order":
        reference = normalize_reference(text)
        return Rejection() if reference is None else Answer(step.next_step, reference=reference)
    try:
        value = inputs.check(step.validation, text)
    except inputs.Invalid:
        return Rejection()
    return Answer(step.next_step, value=value)


def _tap(step: Step, options: tuple[Option, ...], option_id: str, title: str) -> Answer | Rejection:
    option = next((opt for opt in options if opt.id == option_id), None)
    if option_id in step.next_steps:
        target = step.next_steps[option_id]
    elif option is not None and step.next_step is not None:
        target = step.next_step
    else:
        return Rejection(stale=True)
    shown = option.title if option is not None else title
    return Answer(target, value=option_id, title=shown, option=option, selection=option_id)


def matching_option(
    text: str, options: tuple[Option, ...], next_steps: Mapping[str, str]
) -> str | None:
    """The id of the option a typed text names (by id or title, case/accent-insensitive)."""
    said = phrase(text)
    if not said:
        return None
    for option in options:
        if said in (phrase(option.id), phrase(option.title)):
            return option.id
    return next((key for key in next_steps if phrase(key) == said), None)


def updated_context(step: Step, context: Mapping[str, Any], answer: Answer) -> dict[str, Any]:
    """The context after an accepted answer: the input, then `set`, then `compute`.

    Raises ExpressionError when a computation fails (the caller treats it as invalid input).
    """
    updated = dict(context)
    if step.context_key:
        updated[step.context_key] = answer.value
        if answer.title is not None:
            updated[f"{step.context_key}_title"] = answer.title
    updated.update(answer.extra)
    updated.update(step.set)
    if answer.option is not None:
        updated.update(answer.option.set)
    for name, expression in step.compute.items():
        updated[name] = to_context(evaluate(expression, updated))
    return updated
