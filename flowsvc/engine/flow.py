"""The conversation state machine, advance(), start() and enter(): (catalog, state, message) ->
decision.

No I/O happens here: the service hands in the templates (Catalog), the stored State, the parsed
Inbound message, the time, a fresh candidate result reference and, when asked for, the
customer's orders (Needs -> Facts, see orders.py). The returned Decision says what happened
(Outcome), the state to store (None: delete it) and the Graph API bodies to queue, in order.

Order of handling a message (docs/templates.md):

    silent type        -> nothing: no reply, the conversation as it was (IGNORED)
    expired state      -> "session expired" text, then as a first message (EXPIRED); also with
                          no state when the service says the customer's last one expired
    no state           -> cancel word: "nothing to cancel"; menu word: default template;
                          keyword: that template; otherwise the default template, or help text
    unsupported type   -> what the bot understands, then the current step again (unless the
                          step accepts media, locations or contacts, or sent a Flow whose
                          reply this is: then it is its answer; a Flow reply whose
                          flow_token is not the one sent last gets the step again)
    cancel/menu/back   -> end / default template / previous step
    tap                -> next_steps[id], or next_step when the step's message offers the id
    typed text         -> an option's id or title counts as its tap; otherwise validated
                          (or looked up) input for next_step; invalid input that is a trigger
                          keyword starts that template, else the step's error text
    built menu         -> (rows_from / buttons_from, built.py) a tap on an item of any page, or
                          its typed title or number, stores it and goes on; More / Previous
                          send another page; a tap on an item no longer listed is told so
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from flowsvc.engine import built, limits
from flowsvc.engine.answers import Answer, Rejection, interpret, updated_context
from flowsvc.engine.calls import CallResult, outcome_of, request_for
from flowsvc.engine.catalog import Catalog
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.expressions import ExpressionError
from flowsvc.engine.keywords import command
from flowsvc.engine.messages import FLOW_TOKEN_KEY, LANGUAGE_KEY, Bodies, Replies
from flowsvc.engine.orders import (
    Facts,
    MissingFacts,
    Needs,
    customer_orders,
    order_context,
    quoted_order,
    recent_orders,
)
from flowsvc.engine.render import fill_capped
from flowsvc.engine.state import Decision, HistoryEntry, Inbound, Outcome, ResultDraft, State
from flowsvc.engine.template import FLOW, INITIAL, Step, Template


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
    expired_since: bool = False,
    language: str | None = None,
) -> Decision | Needs:
    """Decide what one inbound message does to a conversation.

    `to` is the customer's number for the Graph bodies; `reference` is used only when a result is
    stored. Returns Needs when a step needs the customer's orders and `facts` is None: call again
    with the same arguments plus the Facts; the second call never returns Needs.
    `expired_since`: the customer's last conversation expired (and was deleted) since they last
    wrote, so a message without a conversation is greeted with the expiry notice.
    `language`: the customer's stored language (None: not chosen; their calling code's, by
    config.languages_by_country, or each template's own). A decision's `language` is the one
    the customer chose in this turn, for the caller to store.
    """
    clipped = inbound.clipped(config.max_input_chars)
    replies = Replies(to, clipped.contact_name, config)
    spoken = language or config.language_of(to)
    rules = _Rules(catalog, clipped, replies, now, config, reference, facts, spoken)
    try:
        decision = rules.decide(state, expired_since=expired_since)
    except MissingFacts as missing:
        return missing.needs
    return _chosen(decision, rules.spoken(state))


def start(
    catalog: Catalog,
    name: str,
    *,
    context: Mapping[str, Any] | None = None,
    step: str = INITIAL,
    to: str,
    now: datetime,
    config: EngineConfig,
    reference: str,
    facts: Facts | None = None,
    language: str | None = None,
) -> Decision | Needs:
    """Start the latest version of template `name` in `step` with `context` (StartConversation).

    The same Needs/Facts protocol as advance(). Raises ValueError when the template is missing or
    inactive or has no such step: the caller checks that first and answers NOT_FOUND /
    FAILED_PRECONDITION.
    """
    template = catalog.current(name)
    if template is None or not template.is_active or not template.has_step(step):
        raise ValueError(f"template {name!r} is missing or inactive, or has no step {step!r}")
    replies = Replies(to, "", config)
    spoken = language or config.language_of(to)
    rules = _Rules(catalog, Inbound(), replies, now, config, reference, facts, spoken)
    try:
        decision = rules.enter(
            template, step, {**rules.fresh(None), **(context or {})}, (), Outcome.STARTED
        )
    except MissingFacts as missing:
        return missing.needs
    return _chosen(decision, spoken)


def enter(
    catalog: Catalog,
    state: State,
    *,
    step: str = "",
    flow: str = "",
    context: Mapping[str, Any] | None = None,
    to: str,
    now: datetime,
    config: EngineConfig,
    reference: str,
    facts: Facts | None = None,
) -> Decision | Needs:
    """Steer a running conversation from outside (UpdateConversation): merge `context` into it,
    then arrive in `step` of the version it runs on, or in `step` (default: initial) of the latest
    version of template `flow`; with neither, arrive again in the step it waits in.

    Arriving is what a customer's answer does: the step's lookup runs, its messages are the
    decision's (the caller decides whether to send them), an end step completes the flow and
    stores its result, and "back" returns to where the conversation was. The customer did not
    write, so last_interaction stays theirs. Raises ValueError for a template or step that is
    not there: the caller checks that first and says why.
    """
    template = catalog.current(flow) if flow else catalog.get(state.flow, state.version)
    target = step or (INITIAL if flow else state.step)
    switching_to_inactive = template is not None and bool(flow) and not template.is_active
    if template is None or switching_to_inactive or not template.has_step(target):
        raise ValueError(f"no step {target!r} to enter in template {flow or state.flow!r}")
    replies = Replies(to, "", config)
    rules = _Rules(catalog, Inbound(), replies, now, config, reference, facts, None)
    moved = bool(flow) or target != state.step
    history = rules.push(state.history, state) if moved else state.history
    try:
        decision = rules.enter(
            template, target, {**state.context, **(context or {})}, history, Outcome.ADVANCED
        )
    except MissingFacts as missing:
        return missing.needs
    return _steered(decision, state, rules.spoken(state))


def silence(
    catalog: Catalog,
    state: State,
    *,
    to: str,
    now: datetime,
    config: EngineConfig,
    reference: str,
    facts: Facts | None = None,
) -> Decision | Needs:
    """The customer said nothing until their step's timer was due (`state.silence_due_at` is
    at or before `now`; the service checks that it is the timer it claimed): send the next
    reminder, or go to the timeout's target, or end the conversation with its text
    (engine.timers). A timer not due yet, or of a conversation that expired or whose template
    is gone, does nothing (IGNORED). The same Needs/Facts protocol as advance()."""
    due = state.silence_due_at
    template = catalog.get(state.flow, state.version)
    if due is None or due > now or state.expires_at <= now:
        return Decision(Outcome.IGNORED, state, ())
    replies = Replies(to, "", config)
    rules = _Rules(catalog, Inbound(), replies, now, config, reference, facts, None)
    if template is None or not template.has_step(state.step):
        return Decision(Outcome.TIMED_OUT, replace(state, silence_due_at=None), ())
    try:
        return _chosen(rules.silence(template, state), rules.spoken(state))
    except MissingFacts as missing:
        return missing.needs


def continue_call(
    catalog: Catalog,
    state: State | None,
    result: CallResult,
    *,
    step: str,
    to: str,
    now: datetime,
    config: EngineConfig,
    reference: str,
    facts: Facts | None = None,
) -> Decision | Needs:
    """A call's result arrives for a conversation that entered call step `step` (the service
    checked that the call is still the one it waits for): map the response into the context and
    go on to the step's next_step, or to its on_error / on_timeout step (calls.outcome_of).

    A conversation that is no longer in that step (it was cancelled, went back, moved on) is left
    as it is: IGNORED. The customer did not write: last_interaction stays theirs.
    """
    template = catalog.get(state.flow, state.version) if state is not None else None
    if state is None or template is None or state.step != step:
        return Decision(Outcome.IGNORED, state, ())
    spec = template.step(step).call
    if spec is None:
        return Decision(Outcome.IGNORED, state, ())
    target, mapped = outcome_of(spec, result)
    target = target or template.step(step).next_step or ""
    replies = Replies(to, "", config)
    rules = _Rules(catalog, Inbound(), replies, now, config, reference, facts, None)
    try:
        decision = rules.leave(
            template, target, {**state.context, **mapped}, state.history, Outcome.ADVANCED, 0
        )
    except MissingFacts as missing:
        return missing.needs
    return _steered(decision, state, rules.spoken(state))


def _steered(decision: Decision, before: State, language: str | None) -> Decision:
    """A decision the customer did not cause (steering, a call's result): their language kept
    unless it changed, and their last_interaction left as it was."""
    decision = _chosen(decision, language)
    if decision.state is None:
        return decision
    moved = replace(decision.state, last_interaction=before.last_interaction)
    return replace(decision, state=moved)


def _chosen(decision: Decision, before: str | None) -> Decision:
    """The decision with `language` set only when the turn changed the customer's language."""
    if decision.language is None or decision.language == before:
        return replace(decision, language=None) if decision.language is not None else decision
    return decision


def _language(context: Mapping[str, Any]) -> str | None:
    said = context.get(LANGUAGE_KEY)
    return said if isinstance(said, str) and said else None


@dataclass(frozen=True)
class _Rules:
    """The rules of the flow, as methods over the arguments of one advance() or start() call."""

    catalog: Catalog
    inbound: Inbound
    replies: Replies
    now: datetime
    config: EngineConfig
    reference: str
    facts: Facts | None
    language: str | None  # the customer's, before this turn (stored or by calling code)

    def spoken(self, state: State | None) -> str | None:
        """The language the customer speaks in `state` (its context's), else theirs."""
        said = state.context.get(LANGUAGE_KEY) if state is not None else None
        return said if isinstance(said, str) and said else self.language

    def fresh(self, state: State | None) -> dict[str, Any]:
        """The context a new conversation starts with: the customer's language, if known."""
        language = self.spoken(state)
        return {LANGUAGE_KEY: language} if language else {}

    def decide(self, state: State | None, *, expired_since: bool = False) -> Decision:
        if self.inbound.unsupported_type in self.config.silent_types:
            return Decision(Outcome.IGNORED, state, ())
        expired = state.expires_at <= self.now if state is not None else expired_since
        if expired:
            fresh = self.first_message(state)
            notice = self.replies.text(self.own_text(state, "expired"))
            return replace(fresh, outcome=Outcome.EXPIRED, messages=(notice, *fresh.messages))
        if state is None:
            return self.first_message(None)
        template = self.catalog.get(state.flow, state.version)
        if template is None or not template.has_step(state.step):
            return self.first_message(state)  # its template was deleted: nothing left to continue
        return self.reply(template, state)

    def first_message(self, before: State | None) -> Decision:
        """A message from a customer with no conversation running (`before`: the one that
        expired or whose template is gone, whose language they spoke)."""
        language = self.spoken(before)
        if self.unsupported:
            words = self.config.text(language, "unsupported")
            notice = f"{words} {self.config.text(language, 'start_hint')}"
            return Decision(Outcome.UNSUPPORTED, None, (self.replies.text(notice),))
        said = command(self.inbound.text, self.config, language)
        if said == "cancel":
            nothing = self.config.text(language, "nothing_to_cancel")
            return Decision(Outcome.CANCELLED, None, (self.replies.text(nothing),))
        if said == "menu":
            return self.start_default(Outcome.RESTARTED, before)
        if said is None and self.inbound.text is not None:
            matched = self.catalog.match_keyword(self.inbound.text)
            if matched is not None:
                return self.enter(
                    matched, INITIAL, self.keyword_context(matched, before), (), Outcome.STARTED
                )
        return self.start_default(Outcome.STARTED, before)

    def keyword_context(self, matched: Template, state: State | None) -> dict[str, Any]:
        """A conversation a trigger keyword starts speaks the keyword's language, if the
        template names one (language_keywords), else the customer's."""
        language = matched.language_of(self.inbound.text)
        return {LANGUAGE_KEY: language} if language else self.fresh(state)

    def start_default(self, outcome: Outcome, state: State | None) -> Decision:
        default = self.default_template()
        if default is None:
            help_text = self.config.text(self.spoken(state), "help")
            return Decision(Outcome.HELP, None, (self.replies.text(help_text),))
        return self.enter(default, INITIAL, self.fresh(state), (), outcome)

    def default_template(self) -> Template | None:
        name = self.config.default_template
        template = self.catalog.current(name) if name else None
        return template if template is not None and template.is_active else None

    def reply(self, template: Template, state: State) -> Decision:
        """A message in a running conversation, waiting in `state.step` of `template`."""
        if self.unsupported and not template.step(state.step).accepted:
            again = self.replies.step(template, state.step, state.context)
            notice = self.replies.text(self.own_text(state, "unsupported"))
            return self.stay(template, state, Outcome.UNSUPPORTED, (notice, *again))
        said = command(self.inbound.text, self.config, self.spoken(state))
        if said == "cancel":
            cancelled = self.own_text(state, "cancelled")
            return Decision(Outcome.CANCELLED, None, (self.replies.text(cancelled),))
        if said == "menu":
            default = self.default_template()
            if default is None:
                help_text = self.own_text(state, "help")
                return self.stay(template, state, Outcome.HELP, (self.replies.text(help_text),))
            return self.enter(default, INITIAL, self.fresh(state), (), Outcome.RESTARTED)
        if said == "back":
            return self.back(template, state)
        if template.step(state.step).call is not None:
            return self.waiting(template, state)
        spoken = template.speaking(self.spoken(state))
        answering = spoken.answering(state.step)
        if answering is not None and answering.built is not None:
            choice = self.built_choice(template, state, answering.built)
            if isinstance(choice, Decision):
                return choice
            answer = choice
        else:
            answer = interpret(
                spoken, state.step, self.inbound, flow_token=state.context.get(FLOW_TOKEN_KEY)
            )
        if isinstance(answer, Rejection):
            if not answer.stale:
                return self.rejected(template, state, resend=answer.resend)
            again = self.replies.step(template, state.step, state.context)
            return self.stay(template, state, Outcome.STALE_SELECTION, again)
        if answer.reference is not None:
            order = quoted_order(
                self.facts, answer.reference, self.config, self.catalog.order_templates
            )
            if order is None:
                return self.rejected(template, state, resend=False)
            answer = replace(answer, value=answer.reference, extra=order_context(order))
        step = template.step(state.step)
        try:
            context = updated_context(step, state.context, answer)
        except ExpressionError:
            error = self.replies.error(template, step, state.context)
            return self.stay(template, state, Outcome.INVALID_INPUT, (error,))
        target = step.ruled_target(context) or answer.target
        return self.go(template, state, target, context, answer.selection)

    def built_choice(
        self, template: Template, state: State, spec: built.RowsFrom
    ) -> Answer | Rejection | Decision:
        """A reply to a menu built from data: a tap on an item (of any page, as long as the
        item is still in the list) or its typed title or number chooses it; "More" and
        "Previous" show another page; a tap on an item that left the list is told so and shown
        the menu again. Other typed text is the step's free input when it has validation or a
        lookup, else invalid."""
        step = template.step(state.step)
        target = step.next_step or ""
        selected = self.inbound.selection_id
        if selected is not None:
            resolved = built.resolve(spec, state.context, selected)
            if isinstance(resolved, built.Page):
                pages = self.replies.step(template, state.step, state.context, resolved.number)
                return self.stay(template, state, Outcome.ADVANCED, pages[-1:])
            if resolved is None:
                if selected in step.next_steps:
                    return Answer(step.next_steps[selected], value=selected, selection=selected)
                notice = self.replies.text(self.own_text(state, "not_available"))
                again = self.replies.step(template, state.step, state.context)
                return self.stay(template, state, Outcome.STALE_SELECTION, (notice, *again))
            chosen: built.Chosen | None = resolved
        else:
            chosen = built.match_typed(spec, state.context, self.inbound.text or "")
        if chosen is None:
            if step.validation is None and step.lookup is None:
                return Rejection(resend=True)
            return interpret(template, state.step, self.inbound)
        return Answer(
            target,
            value=selected or chosen.title,
            title=chosen.title,
            selection=selected,
            extra=chosen.stored(spec.store_as),
        )

    def waiting(self, template: Template, state: State) -> Decision:
        """The customer writes while the step's call runs: nothing is stuck, they hear that it
        is on its way (the step's own message again, or the engine's text) and the call's result
        moves them on."""
        again = self.replies.step(template, state.step, state.context) or (
            self.replies.text(self.own_text(state, "call_wait")),
        )
        return self.stay(template, state, Outcome.WAITING, again)

    def go(
        self,
        template: Template,
        state: State,
        target: str,
        context: dict[str, Any],
        selection: str | None,
    ) -> Decision:
        flow = self.catalog.switch_target(template, target)
        if flow is None and template.has_step(target):
            same = target == state.step
            history = state.history if same else self.push(state.history, state)
            return self.enter(template, target, context, history, Outcome.ADVANCED)
        following = self.catalog.current(flow) if flow is not None else None
        if following is None or not following.is_active:
            again = self.replies.step(template, state.step, state.context)
            notice = self.replies.text(self.own_text(state, "not_available"))
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
        hops: int = 0,
    ) -> Decision:
        """Arrive in a step: run its lookup, send its messages, or end the conversation; a step
        of rules that sends nothing passes the customer on at once (at most max_rule_hops)."""
        step = template.step(step_name)
        values = dict(context)
        if step.routes_at_once:
            return self.route(template, step_name, values, history, outcome, hops)
        answering = template.answering(step_name)
        if answering is not None and answering.built is not None:
            if not built.items_of(answering.built, values):
                empty = answering.built.empty
                return self.leave(template, empty, values, history, outcome, hops + 1)
        if step.lookup == "recent_orders":
            values["recent_orders"] = recent_orders(
                customer_orders(self.facts, self.config, self.catalog.order_templates),
                currency=template.currency,
                limit=self.config.recent_orders_limit,
                empty=self.words(template, values, "no_orders"),
            )
        if step.end_conversation:
            result = None
            shown = values
            if step.save_result:
                result = ResultDraft(template.name, template.version, self.reference, values)
                shown = {**values, "order_id": self.reference}
            sent = self.replies.step(template, step_name, shown) or (
                self.replies.text(self.words(template, values, "completed")),
            )
            return Decision(Outcome.COMPLETED, None, sent, result, language=_language(values))
        if step.message is not None and step.message.type == FLOW:
            # A new token each time the step is entered: a reply to an older Flow message (an
            # earlier visit, another conversation) carries another one and is not taken.
            values[FLOW_TOKEN_KEY] = self.reference
        new_state = State(
            flow=template.name,
            version=template.version,
            step=step_name,
            context=values,
            history=history,
            expires_at=self.expiry(template),
            last_interaction=self.now,
            silence_due_at=self.armed(step),
        )
        sent = self.replies.step(template, step_name, values)
        call = request_for(step.call, step_name, values) if step.call is not None else None
        return Decision(
            outcome, new_state, sent, handoff=step.handoff, call=call, language=_language(values)
        )

    def route(
        self,
        template: Template,
        step_name: str,
        context: dict[str, Any],
        history: tuple[HistoryEntry, ...],
        outcome: Outcome,
        hops: int,
    ) -> Decision:
        """Leave a step of rules for its first rule that holds, else its next_step; the step is
        never waited in, so it is not in the history ("back" skips it)."""
        step = template.step(step_name)
        target = step.ruled_target(context) or step.next_step
        return self.leave(template, target, context, history, outcome, hops)

    def leave(
        self,
        template: Template,
        target: str | None,
        context: dict[str, Any],
        history: tuple[HistoryEntry, ...],
        outcome: Outcome,
        hops: int,
    ) -> Decision:
        """Pass on at once to `target` from a step that is never waited in (a step of rules,
        a menu built from an empty list); nowhere to go ends the conversation politely."""
        flow = self.catalog.switch_target(template, target) if target else None
        following = self.catalog.current(flow) if flow is not None else None
        if hops >= self.config.max_rule_hops or not target:
            following = None
        elif flow is None and template.has_step(target):
            return self.enter(template, target, context, history, outcome, hops + 1)
        if following is None or not following.is_active:
            language = context.get(LANGUAGE_KEY)
            notice = self.replies.text(self.config.text(language, "not_available"))
            return Decision(Outcome.CANCELLED, None, (notice,))
        return self.enter(following, INITIAL, context, history, outcome, hops + 1)

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
                    silence_due_at=self.armed(previous.step(step_name)),
                )
                again = self.replies.step(previous, step_name, state.context)
                return Decision(Outcome.WENT_BACK, moved, again)
        again = self.replies.step(template, state.step, state.context)
        return self.stay(template, replace(state, history=()), Outcome.WENT_BACK, again)

    def rejected(self, template: Template, state: State, *, resend: bool) -> Decision:
        """Invalid input: a trigger keyword starts its template, anything else gets the error."""
        matched = self.catalog.match_keyword(self.inbound.text or "")
        if matched is not None:
            context = self.keyword_context(matched, state)
            return self.enter(matched, INITIAL, context, (), Outcome.STARTED)
        sent: Bodies = (self.replies.error(template, template.step(state.step), state.context),)
        if resend:
            sent += self.replies.step(template, state.step, state.context)
        return self.stay(template, state, Outcome.INVALID_INPUT, sent)

    def stay(
        self, template: Template, state: State, outcome: Outcome, messages: Bodies
    ) -> Decision:
        """The conversation waits where it is; only its expiry slides."""
        kept = replace(
            state,
            last_interaction=self.now,
            expires_at=self.expiry(template),
            silence_due_at=self.armed(template.step(state.step)),
            reminders=0,
        )
        return Decision(outcome, kept, messages)

    def armed(self, step: Step) -> datetime | None:
        """When the timer of a customer waiting in `step` from now is due (engine.timers): every
        arrival and every reply starts the silence afresh, which cancels the timer before."""
        return step.timeout.first_due(self.now) if step.timeout is not None else None

    def silence(self, template: Template, state: State) -> Decision:
        """The customer said nothing until their timer was due: the next reminder, else the
        timeout's target (a step, flow:<template>, or the end with its text)."""
        spoken = template.speaking(state.context.get(LANGUAGE_KEY))  # its texts, translated
        spec = spoken.step(state.step).timeout
        if spec is None:  # nothing to do (the step lost its timeout): disarm
            return Decision(Outcome.TIMED_OUT, replace(state, silence_due_at=None), ())
        if state.reminders < spec.reminders:
            sent = state.reminders + 1
            values = self.replies.values(state.context)
            text = fill_capped(
                spec.remind_text, values, limits.MAX_TEXT_BODY, currency=template.currency
            )
            due = spec.due_after_reminder(sent, self.now)
            kept = replace(state, silence_due_at=due, reminders=sent)
            return Decision(Outcome.REMINDED, kept, (self.replies.text(text),))
        if spec.end is not None:
            values = self.replies.values(state.context)
            text = fill_capped(spec.end, values, limits.MAX_TEXT_BODY, currency=template.currency)
            return Decision(Outcome.TIMED_OUT, None, (self.replies.text(text),))
        if spec.go is None:
            return Decision(Outcome.TIMED_OUT, replace(state, silence_due_at=None), ())
        moved = self.go(template, state, spec.go, dict(state.context), None)
        if moved.outcome == Outcome.STALE_SELECTION:  # its target is gone: stop, say nothing
            return Decision(Outcome.TIMED_OUT, replace(state, silence_due_at=None), ())
        if moved.state is not None:  # the customer did not write: their last message stands
            moved = replace(
                moved, state=replace(moved.state, last_interaction=state.last_interaction)
            )
        return replace(moved, outcome=Outcome.TIMED_OUT)

    def expiry(self, template: Template) -> datetime:
        hours = template.expiry_hours
        return self.now + (timedelta(hours=hours) if hours else self.config.expiry)

    def push(self, history: tuple[HistoryEntry, ...], state: State) -> tuple[HistoryEntry, ...]:
        entry = (state.flow, state.version, state.step)
        return (*history, entry)[-self.config.max_history :]

    def words(self, template: Template, context: Mapping[str, Any], key: str) -> str:
        """One of menuflow's own texts in the language of `context`, as `template` words it."""
        language = _language(context)
        return template.own_text(language, key, self.config.text(language, key))

    def own_text(self, state: State | None, key: str) -> str:
        """One of menuflow's own texts in the customer's language, as their template words it,
        else as the deployment does (config.text)."""
        language = self.spoken(state)
        template = self.catalog.get(state.flow, state.version) if state is not None else None
        if template is None:
            return self.config.text(language, key)
        return template.own_text(language, key, self.config.text(language, key))

    @property
    def unsupported(self) -> bool:
        return self.inbound.text is None and self.inbound.selection_id is None
