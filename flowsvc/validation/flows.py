"""Checks on a step that sends a WhatsApp Flow: Meta's action.parameters of an interactive
`flow` message, and the step fields that keep the Flow's reply (docs/templates.md)."""

from collections.abc import Collection, Mapping
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.template import FLOW
from flowsvc.validation.context import check_key, placeholders
from flowsvc.validation.violation import Violation, check_keys, clip, kind, quote, suggest

PARAMETER_KEYS = (
    "flow_message_version",
    "flow_id",
    "flow_name",
    "flow_cta",
    "flow_action",
    "flow_action_payload",
    "mode",
)
FLOW_ACTIONS = ("navigate", "data_exchange")
MODES = ("draft", "published")
MAX_NAME = 200  # a Flow id, name or screen id as a template writes it
MAX_FLOW_FIELDS = 50
MAX_DATA_DEPTH = 8  # nesting of a screen's data objects and lists


def check_flow_action(
    action: Mapping[object, object], path: str, out: list[Violation], *, names: Collection[str]
) -> None:
    """A Flow message's action: {"name": "flow", "parameters": {...}} as Meta documents it."""
    check_keys(action, ("name", "parameters"), path, out)
    if action.get("name") != FLOW:
        out.append(Violation(f"{path}.name", f"must be 'flow', not {quote(action.get('name'))}"))
    parameters = action.get("parameters")
    where = f"{path}.parameters"
    if not isinstance(parameters, Mapping):
        out.append(
            Violation(
                where,
                'must be an object like {"flow_id": "<id>", "flow_cta": "Book now", '
                '"flow_action_payload": {"screen": "<SCREEN_ID>"}}',
            )
        )
        return
    if "flow_token" in parameters:
        out.append(
            Violation(
                f"{where}.flow_token",
                "is made by menuflow each time the step is entered (so that the reply can be "
                "matched to the conversation): remove it",
            )
        )
    check_keys(
        {k: v for k, v in parameters.items() if k != "flow_token"}, PARAMETER_KEYS, where, out
    )
    version = parameters.get("flow_message_version", "3")
    if version != "3":
        out.append(
            Violation(
                f"{where}.flow_message_version", f'must be "3" (a string), not {quote(version)}'
            )
        )
    _check_flow_ref(parameters, where, out)
    _check_cta(parameters.get("flow_cta"), f"{where}.flow_cta", out)
    flow_action = parameters.get("flow_action", "navigate")
    if flow_action not in FLOW_ACTIONS:
        out.append(
            Violation(
                f"{where}.flow_action",
                f"must be 'navigate' or 'data_exchange', not {quote(flow_action)}"
                f"{suggest(flow_action, FLOW_ACTIONS)}",
            )
        )
    elif flow_action == "navigate":
        _check_payload(parameters.get("flow_action_payload"), where, out, names=names)
    elif "flow_action_payload" in parameters:
        out.append(
            Violation(
                f"{where}.flow_action_payload",
                "is sent only with flow_action 'navigate': with 'data_exchange' the Flow's "
                "endpoint gives the first screen; remove it",
            )
        )
    mode = parameters.get("mode")
    if "mode" in parameters and mode not in MODES:
        out.append(Violation(f"{where}.mode", f"must be 'draft' or 'published', not {quote(mode)}"))


def _check_flow_ref(parameters: Mapping[object, object], where: str, out: list[Violation]) -> None:
    given = [key for key in ("flow_id", "flow_name") if key in parameters]
    if len(given) != 1:
        out.append(
            Violation(
                f"{where}.flow_id",
                "is missing: name the Flow by flow_id or by flow_name"
                if not given
                else "and flow_name are both set: name the Flow by one of them",
            )
        )
    for key in given:
        _check_name(parameters[key], f"{where}.{key}", out)


def _check_name(value: object, path: str, out: list[Violation]) -> None:
    """An id or name sent as written: a non-empty string without placeholders."""
    if not isinstance(value, str) or not value.strip():
        out.append(Violation(path, f"must be a non-empty string, not {kind(value)}"))
    elif len(value) > MAX_NAME:
        out.append(Violation(path, f"is {len(value)} characters long; at most {MAX_NAME}"))
    elif "{" in value or "}" in value:
        out.append(Violation(path, "is sent as written: placeholders are not filled here"))


def _check_cta(value: object, path: str, out: list[Violation]) -> None:
    """The Flow button's label: Meta allows at most 20 characters and no emoji."""
    if not isinstance(value, str) or not value.strip():
        out.append(Violation(path, "is missing: the label of the button that opens the Flow"))
        return
    if len(value) > limits.MAX_FLOW_CTA:
        out.append(
            Violation(
                path,
                f"is {len(value)} characters long; WhatsApp allows at most {limits.MAX_FLOW_CTA}",
            )
        )
    emoji = [char for char in value if is_emoji(char)]
    if emoji:
        out.append(Violation(path, f"has an emoji ({emoji[0]}): WhatsApp allows none here"))
    if placeholders(value)[0]:
        out.append(Violation(path, "is sent as written: placeholders are not filled here"))


def is_emoji(char: str) -> bool:
    """Pictographs, symbols and their modifiers (the emoji blocks of Unicode)."""
    point = ord(char)
    return (
        0x1F000 <= point <= 0x1FAFF
        or 0x2600 <= point <= 0x27BF
        or 0x2B00 <= point <= 0x2BFF
        or point in (0x200D, 0xFE0F, 0x20E3)
    )


def _check_payload(
    payload: object, where: str, out: list[Violation], *, names: Collection[str]
) -> None:
    path = f"{where}.flow_action_payload"
    if not isinstance(payload, Mapping):
        out.append(
            Violation(
                path,
                "is required with flow_action 'navigate': an object like "
                '{"screen": "<SCREEN_ID>", "data": {...}}'
                + ("" if payload is None else f", not {kind(payload)}"),
            )
        )
        return
    check_keys(payload, ("screen", "data"), path, out)
    if "screen" not in payload:
        out.append(Violation(f"{path}.screen", "is missing: the id of the Flow's first screen"))
    else:
        _check_name(payload["screen"], f"{path}.screen", out)
    if "data" not in payload:
        return
    data = payload["data"]
    if not isinstance(data, Mapping) or not data:
        out.append(
            Violation(
                f"{path}.data",
                f"must be a non-empty object (Meta refuses an empty one), not {kind(data)}",
            )
        )
        return
    _check_data(data, f"{path}.data", out, names=names, depth=1)


def _check_data(
    value: object, path: str, out: list[Violation], *, names: Collection[str], depth: int
) -> None:
    """The first screen's data: JSON values; strings may hold placeholders of known names."""
    if depth > MAX_DATA_DEPTH:
        out.append(Violation(path, f"nests deeper than {MAX_DATA_DEPTH} levels"))
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_data(item, f"{path}.{clip(key)}", out, names=names, depth=depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_data(item, f"{path}[{index}]", out, names=names, depth=depth + 1)
    elif isinstance(value, str):
        used, problems = placeholders(value)
        out.extend(Violation(path, problem) for problem in problems)
        for name in used:
            if name not in names:
                out.append(
                    Violation(
                        path,
                        f"placeholder {{{name}}} names nothing this template sets"
                        f"{suggest(name, names)}",
                    )
                )


def check_flow_step(step: Mapping[Any, Any], path: str, out: list[Violation]) -> None:
    """A step sending a Flow waits for its reply: it needs next_step, cannot end the
    conversation, and keeps the reply under context_key and the names in flow_fields."""
    if step.get("end_conversation") is True:
        out.append(
            Violation(
                f"{path}.end_conversation",
                "a step that sends a Flow waits for its reply: it cannot end the conversation",
            )
        )
    elif "next_step" not in step and "next_steps" in step:
        out.append(
            Violation(
                f"{path}.next_step",
                "is missing: where the customer goes once they submit the Flow (next_steps "
                "are for taps; route on the reply's fields with rules)",
            )
        )
    if "context_key" not in step and "flow_fields" not in step:
        out.append(
            Violation(
                f"{path}.context_key",
                'the Flow\'s reply is dropped: add "context_key" (all its fields) or '
                '"flow_fields" (the fields to keep under their own names)',
                warning=True,
            )
        )


def check_flow_fields(step: Mapping[Any, Any], path: str, out: list[Violation]) -> None:
    """`flow_fields`: names of the Flow reply's fields, each kept as a context key of that name
    (so that rules and placeholders read it)."""
    where = f"{path}.flow_fields"
    fields = step["flow_fields"]
    if step.get("type") != FLOW:
        out.append(Violation(where, "only applies to a step of type 'flow'"))
    if not isinstance(fields, list) or not fields:
        out.append(
            Violation(where, f'must be a non-empty list like ["party_size"], not {kind(fields)}')
        )
        return
    if len(fields) > MAX_FLOW_FIELDS:
        out.append(Violation(where, f"has {len(fields)} fields; at most {MAX_FLOW_FIELDS}"))
    for index, name in enumerate(fields):
        check_key(name, f"{where}[{index}]", out, what="flow field")
