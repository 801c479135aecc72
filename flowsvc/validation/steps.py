"""Checks on one step of a template: its fields, where it leads, whether every reply moves on."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.template import FLOW, INITIAL
from flowsvc.validation.built import built_spec, check_built
from flowsvc.validation.context import check_compute, check_key, check_set, check_text
from flowsvc.validation.flows import check_flow_fields, check_flow_step
from flowsvc.validation.handoff import check_handoff
from flowsvc.validation.input_rules import check_accept, check_input_rule
from flowsvc.validation.messages import (
    STEP_MESSAGE_KEYS,
    STEP_MESSAGE_TYPES,
    body_limit,
    check_message,
)
from flowsvc.validation.options import Offer
from flowsvc.validation.rules import check_rules, routes_at_once
from flowsvc.validation.targets import check_target
from flowsvc.validation.violation import (
    Violation,
    check_keys,
    clip,
    kind,
    quote,
    suggest,
)

STEP_KEYS = (
    "prompt",
    "type",
    *STEP_MESSAGE_KEYS,
    "next_steps",
    "next_step",
    "validation",
    "context_key",
    "error_message",
    "set",
    "compute",
    "lookup",
    "end_conversation",
    "save_result",
    "entry",
    "template_replies",
    "handoff",
    "accept",
    "rules",
    "flow_fields",
)
MAX_REPLY_ID = 256
LOOKUPS = ("order", "recent_orders")


@dataclass(frozen=True)
class Scope:
    """What a step check needs to know about the template around the step."""

    steps: Mapping[Any, Any]
    first_offers: list[Offer] | None  # None: the first message is too broken to tell
    known: set[str]
    names: frozenset[str]
    out: list[Violation]
    own: str = ""  # the template's own name
    earlier: Mapping[str, frozenset[str]] = field(default_factory=dict)  # keys set before a step
    menu: Mapping[Any, Any] = field(default_factory=dict)  # menu_structure (the first message)
    # keys set before the customer arrives in a step whose menu is built from data
    entering: Mapping[str, frozenset[str]] = field(default_factory=dict)


def check_step(name: str, step: Mapping[Any, Any], path: str, scope: Scope) -> None:
    """Report everything wrong with one step, including replies that would lead nowhere."""
    out = scope.out
    check_keys(step, STEP_KEYS, path, out)
    end = step.get("end_conversation", False)
    if not isinstance(end, bool):
        out.append(Violation(f"{path}.end_conversation", f"must be true or false, not {kind(end)}"))
    is_end = end is True
    offers, which = _check_own_message(name, step, path, scope)
    _check_texts(name, step, path, scope)
    if "next_step" in step:
        check_target(
            step["next_step"], f"{path}.next_step", scope.steps, scope.known, out, own=scope.own
        )
    if "entry" in step and not isinstance(step["entry"], bool):
        out.append(Violation(f"{path}.entry", f"must be true or false, not {kind(step['entry'])}"))
    _check_template_replies(step, path, out)
    branches = _check_next_steps(step, path, scope, offers, which)
    if "validation" in step:
        check_input_rule(step["validation"], f"{path}.validation", out)
    if "accept" in step:
        check_accept(step, path, out)
    if step.get("type") == FLOW and name != INITIAL:
        check_flow_step(step, path, out)
    if "flow_fields" in step:
        check_flow_fields(step, path, out)
    if "context_key" in step:
        check_key(step["context_key"], f"{path}.context_key", out, what="context_key")
    elif "validation" in step:
        out.append(
            Violation(
                f"{path}.validation",
                "checks the customer's answer, but the step has no context_key, so the answer "
                'is dropped once checked: add "context_key" to keep it',
                warning=True,
            )
        )
    if "set" in step:
        check_set(step["set"], f"{path}.set", out)
    if "compute" in step:
        check_compute(step["compute"], f"{path}.compute", out, names=scope.names)
    lookup = step.get("lookup")
    if "lookup" in step and not (isinstance(lookup, str) and lookup in LOOKUPS):
        out.append(
            Violation(
                f"{path}.lookup",
                f"must be 'order' or 'recent_orders', not {quote(lookup)}"
                f"{suggest(lookup, LOOKUPS)}",
            )
        )
    if "save_result" in step:
        if not isinstance(step["save_result"], bool):
            out.append(Violation(f"{path}.save_result", "must be true or false"))
        elif not is_end:
            out.append(
                Violation(
                    f"{path}.save_result", "only applies to a step with end_conversation true"
                )
            )
    if "handoff" in step:
        check_handoff(step, path, out, scope.names)
    if "rules" in step:
        check_rules(
            name,
            step,
            path,
            steps=scope.steps,
            known=scope.known,
            earlier=scope.earlier.get(name, scope.names),
            later=scope.names,
            out=out,
            own=scope.own,
        )
    holder, holder_path = (scope.menu, "menu_structure") if name == INITIAL else (step, path)
    is_built = built_spec(holder) is not None
    if is_built:
        check_built(
            holder,
            holder_path,
            step,
            path,
            steps=scope.steps,
            known=scope.known,
            before=scope.entering.get(name, scope.names),
            later=scope.names,
            out=out,
            own=scope.own,
        )
    if routes_at_once(name, step):
        pass  # checked with its rules: it moves on at once to a rule's target or next_step
    elif is_end:
        _check_end(step, path, out, offers, which)
    elif "handoff" in step and "next_step" not in step and not branches:
        pass  # the customer waits for people, who say where the bot takes over (Resume)
    elif is_built:
        pass  # checked with its menu: a choice goes to next_step, an empty list to `empty`
    else:
        _check_moves_on(name, step, path, out, offers, which, branches)


def _check_own_message(
    name: str, step: Mapping[Any, Any], path: str, scope: Scope
) -> tuple[list[Offer] | None, str]:
    """The choices of the message this step answers (None if unknown), and its name."""
    fields = [key for key in ("type", *STEP_MESSAGE_KEYS) if key in step]
    if name == INITIAL:
        if fields:
            scope.out.append(
                Violation(
                    f"{path}.{fields[0]}",
                    "step 'initial' answers the template's first message: put type, header, "
                    "body, footer and action at the top of menu_structure, not in 'initial'",
                )
            )
        return scope.first_offers, "the first message"
    which = f"the message of step '{clip(name)}'"
    if "type" not in step:
        if fields:
            scope.out.append(
                Violation(
                    f"{path}.type",
                    f"is missing: this step has {', '.join(fields)} but no type; "
                    "say 'button' or 'list'",
                )
            )
            return None, which
        return [], which
    message_type = step["type"]
    if not (isinstance(message_type, str) and message_type in STEP_MESSAGE_TYPES):
        scope.out.append(
            Violation(
                f"{path}.type",
                f"is {quote(message_type)}: must be 'button', 'list' or 'text', "
                "'cta_url', 'location_request_message' or 'flow', or a media type "
                f"('image', 'document', 'video', 'audio', 'sticker')"
                f"{suggest(message_type, STEP_MESSAGE_TYPES)}",
            )
        )
        return None, which
    offers = check_message(
        message_type, step, path, scope.out, names=scope.names, body_from_prompt="prompt" in step
    )
    return offers, which


def _check_texts(name: str, step: Mapping[Any, Any], path: str, scope: Scope) -> None:
    message_type = step.get("type")
    prompt_is_body = (
        message_type in ("button", "cta_url", "location_request_message", FLOW)
        and "body" not in step
    )
    if "prompt" in step and name == INITIAL:
        scope.out.append(
            Violation(
                f"{path}.prompt",
                "is never sent: step 'initial' is entered by sending the first message, so put "
                "this text in menu_structure.body",
                warning=True,
            )
        )
    elif "prompt" in step:
        check_text(
            step["prompt"],
            f"{path}.prompt",
            scope.out,
            limit=body_limit(message_type) if prompt_is_body else limits.MAX_TEXT_BODY,
            names=scope.names,
            why=f" (the prompt is the body of this step's {message_type} message)"
            if prompt_is_body
            else "",
        )
    elif (
        name != INITIAL
        and "type" not in step
        and step.get("end_conversation") is not True
        and "rules" not in step
    ):
        scope.out.append(
            Violation(
                path,
                f"step '{clip(name)}' sends nothing when entered: give it a prompt "
                "(or a message) so the customer knows a reply is expected",
            )
        )
    if "error_message" in step:
        check_text(
            step["error_message"],
            f"{path}.error_message",
            scope.out,
            limit=limits.MAX_TEXT_BODY,
            names=scope.names,
        )


def _check_next_steps(
    step: Mapping[Any, Any], path: str, scope: Scope, offers: list[Offer] | None, which: str
) -> Mapping[Any, Any]:
    """Check next_steps against the choices offered; return it (empty when absent or broken)."""
    if "next_steps" not in step:
        return {}
    next_steps = step["next_steps"]
    if not isinstance(next_steps, Mapping):
        scope.out.append(
            Violation(
                f"{path}.next_steps",
                f"must be an object of choice id -> target, not {kind(next_steps)}",
            )
        )
        return {}
    offered = {offer.id: offer for offer in offers or ()}
    ids = ", ".join(f"'{clip(option)}'" for option in offered)
    replies = _template_replies(step)
    for choice, target in next_steps.items():
        choice_path = f"{path}.next_steps.{choice}"
        if offers is not None and choice not in offered and choice not in replies:
            if offered:
                problem = f"is not a choice of {which}, whose ids are {ids}"
            else:
                problem = f"can never be chosen: {which} offers no buttons or list rows"
            scope.out.append(
                Violation(choice_path, f"'{clip(choice)}' {problem}{suggest(choice, offered)}")
            )
        check_target(target, choice_path, scope.steps, scope.known, scope.out, own=scope.own)
    if "next_step" not in step and step.get("end_conversation") is not True:
        for option in offered:
            if option not in next_steps:
                scope.out.append(
                    Violation(
                        f"{path}.next_steps",
                        f"choice '{clip(option)}' of {which} is not handled: tapping it would go "
                        "nowhere; add it to next_steps, or add a next_step for other choices",
                    )
                )
    return next_steps


def _check_end(
    step: Mapping[Any, Any],
    path: str,
    out: list[Violation],
    offers: list[Offer] | None,
    which: str,
) -> None:
    """An end step sends its prompt and stops: anything about a reply to it is a mistake."""
    for key in ("next_step", "next_steps", "rules"):
        if key in step:
            out.append(
                Violation(
                    f"{path}.{key}",
                    "is never used: this step ends the conversation (end_conversation is "
                    "true); remove one or the other",
                )
            )
    for key in ("validation", "context_key", "error_message"):
        if key in step:
            out.append(
                Violation(
                    f"{path}.{key}",
                    "is never used: a step that ends the conversation gets no reply",
                )
            )
    if step.get("lookup") == "order":
        out.append(
            Violation(
                f"{path}.lookup",
                "'order' reads the customer's reply, but a step that ends the conversation "
                "gets none: put the lookup on the step that asks for the reference",
            )
        )
    if offers:
        out.append(
            Violation(
                f"{path}.end_conversation",
                f"{which} offers choices that could never be answered: this step ends the "
                "conversation",
            )
        )


def _check_moves_on(
    name: str,
    step: Mapping[Any, Any],
    path: str,
    out: list[Violation],
    offers: list[Offer] | None,
    which: str,
    branches: Mapping[Any, Any],
) -> None:
    """A step waiting for a reply must lead somewhere, and the reply should matter."""
    if "next_step" not in step and not branches:
        out.append(
            Violation(
                path,
                f"step '{clip(name)}' has no next_step, no next_steps and no end_conversation: "
                "the customer would be stuck here; say where the reply leads, or end the "
                "conversation",
            )
        )
        return
    if "validation" in step and "next_step" not in step:
        out.append(
            Violation(
                f"{path}.next_step",
                "is missing: a step with validation needs next_step, where valid input goes",
            )
        )
    if "rules" in step:
        return  # the rules read the context: the reply matters to them
    if "next_step" not in step or branches or "context_key" in step or offers is None:
        return
    target = clip(step["next_step"])
    if len(offers) >= 2 and not any(offer.sets for offer in offers):
        out.append(
            Violation(
                path,
                f"every choice of {which} leads to '{target}' and none is remembered: add a "
                "context_key to store the choice, next_steps to branch on it, or set on "
                "the options",
            )
        )
    elif not offers and "validation" not in step and step.get("lookup") != "order":
        out.append(
            Violation(
                path,
                f"step '{clip(name)}' accepts any reply and ignores it: whatever the customer "
                f"writes, even 'no', leads to '{target}'; offer buttons and branch with "
                "next_steps, check the reply with validation, or store it with context_key",
            )
        )


def _template_replies(step: Mapping[Any, Any]) -> set[str]:
    raw = step.get("template_replies")
    return {r for r in raw if isinstance(r, str)} if isinstance(raw, list) else set()


def _check_template_replies(step: Mapping[Any, Any], path: str, out: list[Violation]) -> None:
    """The quick reply payloads of Meta message templates sent while a conversation waits in
    the step (a business-initiated start): next_steps may lead on from them."""
    if "template_replies" not in step:
        return
    raw = step["template_replies"]
    if not isinstance(raw, list):
        out.append(
            Violation(f"{path}.template_replies", f"must be a list of payloads, not {kind(raw)}")
        )
        return
    for index, reply in enumerate(raw):
        if not isinstance(reply, str) or not 0 < len(reply) <= MAX_REPLY_ID:
            out.append(
                Violation(
                    f"{path}.template_replies[{index}]",
                    f"must be a quick reply payload of 1 to {MAX_REPLY_ID} characters",
                )
            )
