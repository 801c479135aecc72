"""advance(): the conversation state machine. Pure: (catalog, state, message) -> decision.

No I/O happens here: the service hands in the templates (Catalog), the stored State, the parsed
Inbound message, the time, a fresh candidate result reference and, when asked for, the
customer's orders (Needs -> Facts, see orders.py). The returned Decision says what happened
(Outcome), the state to store (None: delete it) and the Graph API bodies to queue, in order.

Order of handling a message (docs/templates.md):

    expired state      -> "session expired" text, then as a first message (EXPIRED)
    no state           -> cancel word: "nothing to cancel"; menu word: default template;
                          keyword: that template; otherwise the default template, or help text
    unsupported type   -> what the bot understands, then the current step again
    cancel/menu/back   -> end / default template / previous step
    tap                -> next_steps[id], or next_step when the step's message offers the id
    typed text         -> an option's id or title counts as its tap; otherwise validated
                          (or looked up) input for next_step; invalid input that is a trigger
                          keyword starts that template, else the step's error text
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from flowsvc.engine import inputs, limits
from flowsvc.engine.catalog import Catalog
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.expressions import ExpressionError, evaluate, to_context
from flowsvc.engine.keywords import phrase
from flowsvc.engine.messages import build, text_message
from flowsvc.engine.orders import (
    Facts,
    Needs,
    OrderFact,
    find_order,
    normalize_reference,
    order_context,
    recent_orders,
)
from flowsvc.engine.render import fill_capped, truncate
from flowsvc.engine.state import Decision, HistoryEntry, Inbound, Outcome, ResultDraft, State
from flowsvc.engine.template import FLOW_PREFIX, GUIDE_FLOW_SUFFIX, INITIAL, Option, Step, Template

Messages = tuple[dict[str, Any], ...]


def advance(
    catalog: Catalog,
    state: State | None,
    inbound: Inbound,
    *,
    to: str,
    now: datetime,
    config: EngineConfig,
    reference: str,
    facts: Facts | None = None,
) -> Decision | Needs:
    """Decide what one inbound message does to a conversation.

    `to` is the customer's number for the Graph bodies; `reference` is used only when a result is
    stored. Returns Needs when a step needs the customer's orders and `facts` is None: call again
    with the same arguments plus the Facts; the second call never returns Needs.
    """
    limit = config.max_input_chars
    clipped = replace(
        inbound,
        text=None if inbound.text is None else inbound.text[:limit],
        selection_id=None if inbound.selection_id is None else inbound.selection_id[:limit],
        selection_title=inbound.selection_title[:limit],
        contact_name=inbound.contact_name[:limit],
    )
    turn = _Turn(catalog, clipped, to, now, config, reference, facts)
    try:
        return turn.decide(state)
    except _MissingFacts as missing:
        return missing.needs


def start(
    catalog: Catalog,
    name: str,
    *,
    context: Mapping[str, Any] | None = None,
    to: str,
    now: datetime,
    config: EngineConfig,
    reference: str,
    facts: Facts | None = None,
) -> Decision | Needs:
    """Start the latest version of template `name` with `context` (StartConversation).

    The same Needs/Facts protocol as advance(). Raises ValueError when the template is missing or
    inactive: the caller checks that first and answers NOT_FOUND / FAILED_PRECONDITION.
    """
    template = catalog.current(name)
    if template is None or not template.is_active:
        raise ValueError(f"template {name!r} is missing or inactive")
    turn = _Turn(catalog, Inbound(), to, now, config, reference, facts)
    try:
        return turn.enter(template, INITIAL, dict(context or {}), (), Outcome.STARTED)
    except _MissingFacts as missing:
        return missing.needs


class _MissingFacts(Exception):
    """Raised deep in a turn to stop it and ask the service for data."""

    def __init__(self, needs: Needs) -> None:
        super().__init__("lookup needed")
        self.needs = needs


@dataclass(frozen=True)
class _Turn:
    """One call of advance(): its arguments, and the rules as methods over them."""

    catalog: Catalog
    inbound: Inbound
    to: str
    now: datetime
    config: EngineConfig
    reference: str
    facts: Facts | None

    def decide(self, state: State | None) -> Decision:
        if state is not None and state.expires_at <= self.now:
            fresh = self.first_message()
            notice = self.text(self.config.expired_text)
            return replace(fresh, outcome=Outcome.EXPIRED, messages=(notice, *fresh.messages))
        if state is None:
            return self.first_message()
        template = self.catalog.get(state.flow, state.version)
        if template is None or not template.has_step(state.step):
            return self.first_message()  # its template was deleted: nothing left to continue
        return self.reply(template, state)

    # -- no conversation -------------------------------------------------------------------

    def first_message(self) -> Decision:
        if self.unsupported:
            notice = f"{self.config.unsupported_text} {self.config.start_hint}"
            return Decision(Outcome.UNSUPPORTED, None, (self.text(notice),))
        command = self.command()
        if command == "cancel":
            return Decision(
                Outcome.CANCELLED, None, (self.text(self.config.nothing_to_cancel_text),)
            )
        if command == "menu":
            return self.start_default(Outcome.RESTARTED)
        if command is None and self.inbound.text is not None:
            matched = self.catalog.match_keyword(self.inbound.text)
            if matched is not None:
                return self.enter(matched, INITIAL, {}, (), Outcome.STARTED)
        return self.start_default(Outcome.STARTED)

    def start_default(self, outcome: Outcome) -> Decision:
        default = self.default_template()
        if default is None:
            return Decision(Outcome.HELP, None, (self.text(self.config.help_text),))
        return self.enter(default, INITIAL, {}, (), outcome)

    def default_template(self) -> Template | None:
        name = self.config.default_template
        template = self.catalog.current(name) if name else None
        return template if template is not None and template.is_active else None

    # -- a running conversation ------------------------------------------------------------

    def reply(self, template: Template, state: State) -> Decision:
        if self.unsupported:
            again = self.current(template, state.step, state.context)
            notice = self.text(self.config.unsupported_text)
            return self.stay(template, state, Outcome.UNSUPPORTED, (notice, *again))
        command = self.command()
        if command == "cancel":
            return Decision(Outcome.CANCELLED, None, (self.text(self.config.cancelled_text),))
        if command == "menu":
            default = self.default_template()
            if default is None:
                return self.stay(template, state, Outcome.HELP, (self.text(self.config.help_text),))
            return self.enter(default, INITIAL, {}, (), Outcome.RESTARTED)
        if command == "back":
            return self.back(template, state)
        step = template.step(state.step)
        if self.inbound.selection_id is not None:
            return self.tap(template, state, step, self.inbound.selection_id)
        return self.typed(template, state, step, self.inbound.text or "")

    def tap(self, template: Template, state: State, step: Step, option_id: str) -> Decision:
        answering = template.answering(state.step)
        option = answering.option(option_id) if answering is not None else None
        if option_id in step.next_steps:
            target = step.next_steps[option_id]
        elif option is not None and step.next_step is not None:
            target = step.next_step
        else:
            again = self.current(template, state.step, state.context)
            return self.stay(template, state, Outcome.STALE_SELECTION, again)
        title = option.title if option is not None else self.inbound.selection_title
        return self.accept(template, state, step, option_id, title, option, target, {}, option_id)

    def typed(self, template: Template, state: State, step: Step, text: str) -> Decision:
        answering = template.answering(state.step)
        options = answering.options if answering is not None else ()
        chosen = _matching_option(text, options, step.next_steps)
        if chosen is not None:
            return self.tap(template, state, step, chosen)
        takes_text = step.next_step is not None and (
            not options or step.validation is not None or step.lookup is not None
        )
        if not takes_text or step.next_step is None:
            return self.rejected(template, state, step, text, resend=True)
        if step.lookup == "order":
            return self.order_lookup(template, state, step, step.next_step, text)
        try:
            value = inputs.check(step.validation, text)
        except inputs.Invalid:
            return self.rejected(template, state, step, text, resend=False)
        return self.accept(template, state, step, value, None, None, step.next_step, {}, None)

    def order_lookup(
        self, template: Template, state: State, step: Step, target: str, text: str
    ) -> Decision:
        reference = normalize_reference(text)
        order = None
        if reference is not None:
            found = find_order(self.lookup(reference), reference)
            order = found if found is not None and self.is_order(found) else None
        if reference is None or order is None:
            return self.rejected(template, state, step, text, resend=False)
        extra = order_context(order)
        return self.accept(template, state, step, reference, None, None, target, extra, None)

    def accept(
        self,
        template: Template,
        state: State,
        step: Step,
        value: Any,
        title: str | None,
        option: Option | None,
        target: str,
        extra: Mapping[str, Any],
        selection: str | None,
    ) -> Decision:
        """Store an accepted input (then `set`, then `compute`) and move to `target`."""
        context = dict(state.context)
        if step.context_key:
            context[step.context_key] = value
            if title is not None:
                context[f"{step.context_key}_title"] = title
        context.update(extra)
        context.update(step.set)
        if option is not None:
            context.update(option.set)
        for name, expression in step.compute.items():
            try:
                context[name] = to_context(evaluate(expression, context))
            except ExpressionError:
                error = self.error(template, step, state.context)
                return self.stay(template, state, Outcome.INVALID_INPUT, (error,))
        return self.go(template, state, target, context, selection)

    def go(
        self,
        template: Template,
        state: State,
        target: str,
        context: dict[str, Any],
        selection: str | None,
    ) -> Decision:
        flow = _flow_name(target, template, self.catalog)
        if flow is None and template.has_step(target):
            same = target == state.step
            history = state.history if same else self.push(state.history, state)
            return self.enter(template, target, context, history, Outcome.ADVANCED)
        following = self.catalog.current(flow) if flow is not None else None
        if following is None or not following.is_active:
            again = self.current(template, state.step, state.context)
            notice = self.text(self.config.not_available_text)
            return self.stay(template, state, Outcome.STALE_SELECTION, (notice, *again))
        if selection is not None:
            context["previous_selection"] = selection
        history = self.push(state.history, state)
        return self.enter(following, INITIAL, context, history, Outcome.ADVANCED)

    def enter(
        self,
        template: Template,
        step_name: str,
        context: Mapping[str, Any],
        history: tuple[HistoryEntry, ...],
        outcome: Outcome,
    ) -> Decision:
        """Arrive in a step: run its lookup, send its messages, or end the conversation."""
        step = template.step(step_name)
        values = dict(context)
        if step.lookup == "recent_orders":
            orders = [order for order in self.lookup(None).orders if self.is_order(order)]
            values["recent_orders"] = recent_orders(
                orders,
                currency=template.currency,
                limit=self.config.recent_orders_limit,
                empty=self.config.no_orders_text,
            )
        if step.end_conversation:
            result = None
            shown = values
            if step.save_result:
                result = ResultDraft(template.name, template.version, self.reference, values)
                shown = {**values, "order_id": self.reference}
            sent = self.current(template, step_name, shown) or (
                self.text(self.config.completed_text),
            )
            return Decision(Outcome.COMPLETED, None, sent, result)
        new_state = State(
            flow=template.name,
            version=template.version,
            step=step_name,
            context=values,
            history=history,
            expires_at=self.expiry(template),
            last_interaction=self.now,
        )
        return Decision(outcome, new_state, self.current(template, step_name, values))

    def back(self, template: Template, state: State) -> Decision:
        history = state.history
        while history:
            (flow, version, step_name), history = history[-1], history[:-1]
            previous = self.catalog.get(flow, version) or self.catalog.current(flow)
            if previous is not None and previous.has_step(step_name):
                moved = State(
                    flow=previous.name,
                    version=previous.version,
                    step=step_name,
                    context=state.context,
                    history=history,
                    expires_at=self.expiry(previous),
                    last_interaction=self.now,
                )
                again = self.current(previous, step_name, state.context)
                return Decision(Outcome.WENT_BACK, moved, again)
        again = self.current(template, state.step, state.context)
        return self.stay(template, replace(state, history=()), Outcome.WENT_BACK, again)

    def rejected(
        self, template: Template, state: State, step: Step, text: str, *, resend: bool
    ) -> Decision:
        """Invalid input: a trigger keyword starts its template, anything else gets the error."""
        matched = self.catalog.match_keyword(text)
        if matched is not None:
            return self.enter(matched, INITIAL, {}, (), Outcome.STARTED)
        sent: Messages = (self.error(template, step, state.context),)
        if resend:
            sent += self.current(template, state.step, state.context)
        return self.stay(template, state, Outcome.INVALID_INPUT, sent)

    # -- building blocks -------------------------------------------------------------------

    def current(self, template: Template, step_name: str, context: Mapping[str, Any]) -> Messages:
        """The messages of a step as its context renders them (sent on entry and when re-asked)."""
        values = self.values(context)

        def fill(text: str, limit: int) -> str:
            return fill_capped(text, values, limit, currency=template.currency)

        if step_name == INITIAL:
            return (build(self.to, template.first, fill),)
        step = template.step(step_name)
        message = step.message
        prompt = (
            (text_message(self.to, fill(step.prompt, limits.MAX_TEXT_BODY)),) if step.prompt else ()
        )
        if message is None or (message.type == "text" and message.body is None):
            return prompt
        if message.body is None:
            return (build(self.to, message, fill, body=step.prompt or ""),)
        return (*prompt, build(self.to, message, fill))

    def error(self, template: Template, step: Step, context: Mapping[str, Any]) -> dict[str, Any]:
        text = step.error_message or self.config.invalid_text
        body = fill_capped(
            text, self.values(context), limits.MAX_TEXT_BODY, currency=template.currency
        )
        return text_message(self.to, body)

    def values(self, context: Mapping[str, Any]) -> Mapping[str, Any]:
        """The context plus built-ins, for placeholders."""
        if not self.inbound.contact_name:
            return context
        return {**context, "contact_name": self.inbound.contact_name}

    def text(self, body: str) -> dict[str, Any]:
        return text_message(self.to, truncate(body, limits.MAX_TEXT_BODY))

    def stay(
        self, template: Template, state: State, outcome: Outcome, messages: Messages
    ) -> Decision:
        """The conversation waits where it is; only its expiry slides."""
        kept = replace(state, last_interaction=self.now, expires_at=self.expiry(template))
        return Decision(outcome, kept, messages)

    def expiry(self, template: Template) -> datetime:
        hours = template.expiry_hours
        return self.now + (timedelta(hours=hours) if hours else self.config.expiry)

    def push(self, history: tuple[HistoryEntry, ...], state: State) -> tuple[HistoryEntry, ...]:
        entry = (state.flow, state.version, state.step)
        return (*history, entry)[-self.config.max_history :]

    def lookup(self, reference: str | None) -> Facts:
        if self.facts is None:
            needs = Needs(
                reference=reference,
                recent_limit=self.config.recent_orders_limit,
                templates=self.config.order_templates,
            )
            raise _MissingFacts(needs)
        return self.facts

    def is_order(self, order: OrderFact) -> bool:
        return not self.config.order_templates or order.template in self.config.order_templates

    def command(self) -> str | None:
        if self.inbound.text is None:
            return None
        said = phrase(self.inbound.text)
        if not said:
            return None
        for name, words in (
            ("cancel", self.config.cancel_words),
            ("menu", self.config.menu_words),
            ("back", self.config.back_words),
        ):
            if said in {phrase(word) for word in words}:
                return name
        return None

    @property
    def unsupported(self) -> bool:
        return self.inbound.text is None and self.inbound.selection_id is None


def _matching_option(
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


def _flow_name(target: str, template: Template, catalog: Catalog) -> str | None:
    """The template a target switches to: `flow:<name>`, or the guide's `<name>_flow`."""
    if target.startswith(FLOW_PREFIX):
        return target[len(FLOW_PREFIX) :]
    if template.has_step(target):
        return None
    if target.endswith(GUIDE_FLOW_SUFFIX):
        name = target[: -len(GUIDE_FLOW_SUFFIX)]
        if name in catalog.latest:
            return name
    return None
