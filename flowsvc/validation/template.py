"""validate_template(): a whole template, from its name and keywords to each of its steps.

Pure and total: any JSON value gets a verdict (a list of violations, empty when the template is
valid) and nothing raises. The format is docs/templates.md; WhatsApp's limits are engine/limits.py.
"""

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from flowsvc.engine.keywords import phrase
from flowsvc.engine.orders import ORDER_LOOKUP_NAMES
from flowsvc.engine.render import BUILTIN_NAMES
from flowsvc.engine.template import INITIAL
from flowsvc.validation.built import built_spec, stored_names
from flowsvc.validation.context import check_key
from flowsvc.validation.languages import LANGUAGE_KEYS, check_languages
from flowsvc.validation.messages import MESSAGE_KEYS, MESSAGE_TYPES, check_message
from flowsvc.validation.options import Offer
from flowsvc.validation.rules import check_quiet_cycles, earlier_names, entering_names
from flowsvc.validation.steps import Scope, check_step
from flowsvc.validation.targets import check_reachability
from flowsvc.validation.violation import (
    Violation,
    check_keys,
    clip,
    is_number,
    kind,
    quote,
    suggest,
)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")
STEP_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
MAX_KEYWORDS = 50
MAX_KEYWORD = 100
MAX_CURRENCY = 5
EXPIRY_HOURS = (1, 720)

TOP_LEVEL_KEYS = (
    "type",
    *MESSAGE_KEYS,
    "steps",
    "currency",
    "expiry_hours",
    "context_keys",
    "orders",
    *LANGUAGE_KEYS,
)


def validate_template(
    name: str,
    trigger_keywords: Sequence[str],
    menu_structure: Any,
    *,
    known_templates: Collection[str],
) -> list[Violation]:
    """Every problem with a template, in document order; an empty list means it is valid.

    `known_templates` names the templates a target may switch to (those stored, or imported in the
    same batch); the template's own name always counts.
    """
    found = review_template(name, trigger_keywords, menu_structure, known_templates=known_templates)
    return [violation for violation in found if not violation.warning]


def review_template(
    name: str,
    trigger_keywords: Sequence[str],
    menu_structure: Any,
    *,
    known_templates: Collection[str],
) -> list[Violation]:
    """Every problem and every warning (Violation.warning) with a template, in document order."""
    out: list[Violation] = []
    _check_name(name, out)
    _check_keywords(trigger_keywords, out)
    if not isinstance(menu_structure, Mapping):
        out.append(
            Violation(
                "menu_structure",
                f"must be an object with type, body, action and steps, not {kind(menu_structure)}",
            )
        )
        return out
    known = {template for template in known_templates if isinstance(template, str)}
    if isinstance(name, str):
        known.add(name)
    _check_top_level(menu_structure, out)
    names = frozenset(BUILTIN_NAMES) | _settable_names(menu_structure)
    first_type = menu_structure.get("type")
    first_offers: list[Offer] | None = None
    if isinstance(first_type, str) and first_type in MESSAGE_TYPES:
        first_offers = check_message(first_type, menu_structure, "menu_structure", out, names=names)
    own = name if isinstance(name, str) else ""
    _check_steps(menu_structure, first_offers, known, names, out, own)
    if any(key in menu_structure for key in LANGUAGE_KEYS):

        def review(menu: Mapping[str, Any]) -> list[Violation]:
            return review_template(name, trigger_keywords, menu, known_templates=known_templates)

        check_languages(menu_structure, trigger_keywords, out, review)
    return out


def keyword_conflicts(
    name: str, trigger_keywords: Sequence[str], active: Mapping[str, Sequence[str]]
) -> list[Violation]:
    """Keywords of an active template `name` that another active template has already.

    `active` maps the other active templates to their keywords. Compared as they are matched
    (words only, case and accents folded): two templates with one keyword would leave a
    customer's text to a tie-break, and the author of the second one would not know.
    """
    out: list[Violation] = []
    owners: dict[str, str] = {}
    for other in sorted(active, reverse=True):  # the first by name wins where two share one
        if other != name:
            owners.update((phrase(k), other) for k in active[other] if isinstance(k, str))
    for index, keyword in enumerate(trigger_keywords):
        owner = owners.get(phrase(keyword)) if isinstance(keyword, str) else None
        if owner is not None:
            out.append(
                Violation(
                    f"trigger_keywords[{index}]",
                    f"'{clip(keyword)}' is already a trigger keyword of the active template "
                    f"'{owner}': a customer who writes it would start only one of '{name}' and "
                    f"'{owner}'; remove it from one of them, or deactivate one",
                )
            )
    return out


def template_type(menu_structure: Mapping[str, Any]) -> str:
    """The kind of the first message: "button", "list" or "text"; ValueError if not valid."""
    value = menu_structure.get("type") if isinstance(menu_structure, Mapping) else None
    if not (isinstance(value, str) and value in MESSAGE_TYPES):
        raise ValueError(f"menu_structure.type must be one of {', '.join(MESSAGE_TYPES)}")
    return value


def _check_name(name: object, out: list[Violation]) -> None:
    if not isinstance(name, str):
        out.append(Violation("name", f"must be a string, not {kind(name)}"))
    elif not NAME_PATTERN.match(name):
        out.append(
            Violation(
                "name",
                f"'{clip(name)}' is not a valid template name: start with a lowercase letter, "
                "then lowercase letters, digits or underscores, at most 64 characters",
            )
        )


def _check_keywords(keywords: object, out: list[Violation]) -> None:
    """Keywords are compared the way they are matched: words only, case and accents folded."""
    if not isinstance(keywords, Sequence) or isinstance(keywords, str | bytes):
        out.append(
            Violation("trigger_keywords", f"must be a list of strings, not {kind(keywords)}")
        )
        return
    if len(keywords) > MAX_KEYWORDS:
        out.append(
            Violation(
                "trigger_keywords",
                f"has {len(keywords)} keywords; at most {MAX_KEYWORDS} are allowed",
            )
        )
    seen: dict[str, int] = {}
    for index, keyword in enumerate(keywords):
        path = f"trigger_keywords[{index}]"
        if not isinstance(keyword, str):
            out.append(Violation(path, f"must be a string, not {kind(keyword)}"))
            continue
        if not keyword.strip():
            out.append(Violation(path, "is empty"))
            continue
        if len(keyword.strip()) > MAX_KEYWORD:
            out.append(
                Violation(
                    path,
                    f"is {len(keyword.strip())} characters long; at most {MAX_KEYWORD} allowed",
                )
            )
            continue
        folded = phrase(keyword)
        if not folded:
            out.append(
                Violation(
                    path,
                    f"'{clip(keyword)}' has no letters or digits, so no message can match it",
                )
            )
        elif folded in seen:
            first = seen[folded]
            out.append(
                Violation(
                    path,
                    f"'{clip(keyword)}' repeats trigger_keywords[{first}] "
                    f"('{clip(keywords[first])}'): keywords match regardless of case and accents",
                )
            )
        else:
            seen[folded] = index


def _check_top_level(menu: Mapping[Any, Any], out: list[Violation]) -> None:
    check_keys(menu, TOP_LEVEL_KEYS, "menu_structure", out)
    if "type" not in menu:
        out.append(Violation("menu_structure.type", "is missing: say 'button', 'list' or 'text'"))
    elif not (isinstance(menu["type"], str) and menu["type"] in MESSAGE_TYPES):
        out.append(
            Violation(
                "menu_structure.type",
                f"is {quote(menu['type'])}: must be 'button', 'list' or 'text'"
                f"{suggest(menu['type'], MESSAGE_TYPES)}",
            )
        )
    if "currency" in menu:
        currency = menu["currency"]
        if not isinstance(currency, str) or not currency.strip():
            out.append(
                Violation("menu_structure.currency", "must be a non-empty string such as '$'")
            )
        elif len(currency) > MAX_CURRENCY:
            out.append(
                Violation(
                    "menu_structure.currency",
                    f"'{clip(currency)}' is longer than {MAX_CURRENCY} characters: "
                    "use a symbol or code such as '$' or 'EUR '",
                )
            )
    if "context_keys" in menu:
        keys = menu["context_keys"]
        if not isinstance(keys, list):
            out.append(
                Violation(
                    "menu_structure.context_keys", f"must be a list of keys, not {kind(keys)}"
                )
            )
        else:
            for index, key in enumerate(keys):
                check_key(key, f"menu_structure.context_keys[{index}]", out, what="context key")
    if "orders" in menu and not isinstance(menu["orders"], bool):
        out.append(
            Violation(
                "menu_structure.orders",
                f"must be true (this template's results are orders) or false, "
                f"not {quote(menu['orders'])}",
            )
        )
    if "expiry_hours" in menu:
        hours = menu["expiry_hours"]
        low, high = EXPIRY_HOURS
        if not is_number(hours) or not low <= hours <= high:
            out.append(
                Violation(
                    "menu_structure.expiry_hours",
                    f"must be a number of hours from {low} to {high}, not {quote(hours)}",
                )
            )


def _settable_names(menu: Mapping[Any, Any]) -> frozenset[str]:
    """Every context key some step, row or button of the template can set."""
    names: set[str] = set(_declared_names(menu))
    for keys in _settable_by_step(menu).values():
        names |= keys
    for option in _raw_options(menu):  # also when step 'initial' (which answers it) is missing
        for values in (option.get("set"), _mapping(option.get("reply")).get("set")):
            if isinstance(values, Mapping):
                names.update(k for k in values if isinstance(k, str))
    return frozenset(names)


def _declared_names(menu: Mapping[Any, Any]) -> frozenset[str]:
    """Keys other services put in the context (StartConversation's, UpdateConversation's)."""
    declared = menu.get("context_keys")
    if not isinstance(declared, list):
        return frozenset()
    return frozenset(key for key in declared if isinstance(key, str))


def _settable_by_step(menu: Mapping[Any, Any]) -> dict[str, frozenset[str]]:
    """The context keys each step sets when it is answered (its answer, set, compute, lookup,
    and the set of the rows and buttons of the message it answers)."""
    steps = menu.get("steps")
    if not isinstance(steps, Mapping):
        steps = {}
    found: dict[str, frozenset[str]] = {}
    for step_name, step in steps.items():
        if not isinstance(step, Mapping):
            continue
        names: set[str] = set()
        answering = menu if step_name == INITIAL else step
        key = step.get("context_key")
        if isinstance(key, str):
            names.add(key)
            if _offers_choices(answering):
                names.add(key + "_title")
        for field in ("set", "compute"):
            values = step.get(field)
            if isinstance(values, Mapping):
                names.update(k for k in values if isinstance(k, str))
        fields = step.get("flow_fields")
        if isinstance(fields, list):
            names.update(f for f in fields if isinstance(f, str))
        if step.get("lookup") == "order":
            names.update(ORDER_LOOKUP_NAMES)
        names |= stored_names(answering)
        for option in _raw_options(answering):
            for values in (option.get("set"), _mapping(option.get("reply")).get("set")):
                if isinstance(values, Mapping):
                    names.update(k for k in values if isinstance(k, str))
        found[str(step_name)] = frozenset(names)
    return found


def _offers_choices(holder: Mapping[Any, Any]) -> bool:
    if built_spec(holder) is not None:
        return True
    return holder.get("type") != "text" and bool(_raw_options(holder))


def _raw_options(holder: object) -> list[Mapping[Any, Any]]:
    """Buttons and rows as written, tolerating any shape (for the settable-names pre-pass)."""
    action = _mapping(_mapping(holder).get("action"))
    found = list(_sequence(action.get("buttons")))
    for section in _sequence(action.get("sections")):
        found.extend(_sequence(_mapping(section).get("rows")))
    return [option for option in found if isinstance(option, Mapping)]


def _mapping(value: object) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: object) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _check_steps(
    menu: Mapping[Any, Any],
    first_offers: list[Offer] | None,
    known: set[str],
    names: frozenset[str],
    out: list[Violation],
    own: str,
) -> None:
    if "steps" not in menu:
        ids = ", ".join(f"'{clip(offer.id)}'" for offer in first_offers or ())
        offered = f" (the first message offers {ids})" if ids else ""
        out.append(
            Violation(
                "menu_structure.steps",
                "is missing: add steps with an 'initial' step that says where the reply to the "
                f"first message leads{offered}; without it the customer is stuck",
            )
        )
        return
    steps = menu["steps"]
    if not isinstance(steps, Mapping):
        out.append(
            Violation("menu_structure.steps", f"must be an object of steps, not {kind(steps)}")
        )
        return
    if INITIAL not in steps:
        out.append(
            Violation(
                "menu_structure.steps.initial",
                "is missing: a conversation starts in step 'initial', which handles the reply "
                f"to the first message{suggest(INITIAL, [s for s in steps if isinstance(s, str)])}",
            )
        )
    always = frozenset(BUILTIN_NAMES) | _declared_names(menu)
    settable = _settable_by_step(menu)
    linked = steps
    if isinstance(steps.get(INITIAL), Mapping) and built_spec(menu) is not None:
        # The first message's `empty` target leads on from 'initial' (targets.step_targets).
        linked = {**steps, INITIAL: {**steps[INITIAL], "action": menu.get("action")}}
    earlier = earlier_names(linked, settable, always)
    entering = entering_names(linked, settable, always, _built_steps(menu, steps))
    scope = Scope(steps, first_offers, known, names, out, own, earlier, menu, entering)
    for step_name, step in steps.items():
        path = f"menu_structure.steps.{step_name}"
        if not (isinstance(step_name, str) and STEP_NAME_PATTERN.match(step_name)):
            out.append(
                Violation(
                    path,
                    f"'{clip(step_name)}' is not a valid step name: use letters, digits and "
                    "underscores, starting with a letter or underscore (at most 64)",
                )
            )
        if not isinstance(step, Mapping):
            out.append(Violation(path, f"must be an object, not {kind(step)}"))
            continue
        check_step(str(step_name), step, path, scope)
    check_quiet_cycles(steps, out)
    if INITIAL in steps:
        check_reachability(linked, out)


def _built_steps(menu: Mapping[Any, Any], steps: Mapping[Any, Any]) -> set[str]:
    """The steps whose message (the first message, for 'initial') is built from data."""
    found = {INITIAL} if built_spec(menu) is not None else set()
    for name, step in steps.items():
        if name != INITIAL and isinstance(step, Mapping) and built_spec(step) is not None:
            found.add(str(name))
    return found
