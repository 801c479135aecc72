"""Checks on a step's `call`: an endpoint by name (its URL, headers and secrets live in the
gateway's CALL_ENDPOINTS, never in the template), a method, a path and body whose placeholders
name keys the template sets, a timeout, the response fields it maps, and where it goes on an
error and a timeout. The step's next_step is where a successful call leads."""

import re
from collections.abc import Collection, Mapping
from typing import Any

from flowsvc.engine.calls import MAX_TIMEOUT_SECONDS, METHODS, body_placeholders
from flowsvc.engine.render import placeholder_names
from flowsvc.engine.template import INITIAL
from flowsvc.validation.context import check_key
from flowsvc.validation.targets import check_target
from flowsvc.validation.violation import Violation, check_keys, kind, quote, suggest

CALL_KEYS = (
    "endpoint",
    "method",
    "path",
    "body",
    "timeout_seconds",
    "map",
    "on_error",
    "on_timeout",
)
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FIELD_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")
# A call step reads no reply: these fields would never be used.
UNUSED_WITH_CALL = ("next_steps", "validation", "context_key", "rules", "lookup", "accept")


def mapped_keys(step: Mapping[Any, Any]) -> set[str]:
    """The context keys a call step's `map` sets."""
    mapping = step.get("call", {}).get("map") if isinstance(step.get("call"), Mapping) else None
    return {k for k in mapping if isinstance(k, str)} if isinstance(mapping, Mapping) else set()


def check_call(
    name: str,
    step: Mapping[Any, Any],
    path: str,
    *,
    steps: Mapping[Any, Any],
    known: Collection[str],
    names: Collection[str],
    out: list[Violation],
    own: str,
) -> None:
    """Report everything wrong with a step's `call` (docs/templates.md, "Calls")."""
    call = step["call"]
    where = f"{path}.call"
    if not isinstance(call, Mapping):
        out.append(Violation(where, f"must be an object, not {kind(call)}"))
        return
    check_keys(call, CALL_KEYS, where, out)
    if name == INITIAL:
        out.append(
            Violation(where, "step 'initial' answers the first message: call from a later step")
        )
    if step.get("end_conversation") is True:
        out.append(Violation(where, "a step that ends the conversation cannot wait for a call"))
    for key in UNUSED_WITH_CALL:
        if key in step:
            out.append(
                Violation(
                    f"{path}.{key}",
                    "is never used: a call step reads no reply, its call's result moves the "
                    "customer on (next_step on success, call.on_error, call.on_timeout)",
                )
            )
    if "next_step" not in step:
        out.append(Violation(f"{path}.next_step", "is missing: where a successful call leads"))
    endpoint = call.get("endpoint")
    if not (isinstance(endpoint, str) and ENDPOINT_NAME.fullmatch(endpoint)):
        out.append(
            Violation(
                f"{where}.endpoint",
                "required: the name of an endpoint in the gateway's CALL_ENDPOINTS (letters, "
                f"digits, _ . -, at most 64), not {quote(endpoint)}",
            )
        )
    method = call.get("method", "GET")
    if not (isinstance(method, str) and method.upper() in METHODS):
        out.append(
            Violation(
                f"{where}.method",
                f"must be one of {', '.join(METHODS)}, not {quote(method)}"
                f"{suggest(method, METHODS)}",
            )
        )
    call_path = call.get("path", "/")
    if not (isinstance(call_path, str) and call_path.startswith("/")):
        out.append(
            Violation(
                f"{where}.path",
                "must start with '/': it is added to the endpoint's base URL (the host is in "
                f"settings, never in the template), not {quote(call_path)}",
            )
        )
    else:
        _check_names(placeholder_names(call_path), f"{where}.path", names, out)
    if "body" in call:
        _check_names(body_placeholders(call["body"]), f"{where}.body", names, out)
    timeout = call.get("timeout_seconds", 10)
    if (
        not isinstance(timeout, int | float)
        or isinstance(timeout, bool)
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        out.append(
            Violation(
                f"{where}.timeout_seconds",
                f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS:g}, "
                f"not {quote(timeout)}",
            )
        )
    mapping = call.get("map", {})
    if not isinstance(mapping, Mapping):
        out.append(
            Violation(
                f"{where}.map",
                'must be an object of context key -> response field, like {"zone": '
                f'"address.zone"}}, not {kind(mapping)}',
            )
        )
    else:
        for key, field in mapping.items():
            check_key(key, f"{where}.map", out, what="a map key")
            if not (isinstance(field, str) and FIELD_PATH.fullmatch(field)):
                out.append(
                    Violation(
                        f"{where}.map.{key}",
                        "must be a field of the JSON response, dotted for nested fields and "
                        f"list positions (address.zone, slots.0.time), not {quote(field)}",
                    )
                )
    if "on_error" not in call:
        out.append(
            Violation(
                f"{where}.on_error",
                "is missing: where the customer goes when the call fails (an error status, "
                "no connection, a response lacking a mapped field)",
            )
        )
    for key in ("on_error", "on_timeout"):
        if key in call:
            check_target(call[key], f"{where}.{key}", steps, known, out, own=own)


def _check_names(
    used: Collection[str], path: str, names: Collection[str], out: list[Violation]
) -> None:
    for name in sorted(used):
        if name not in names:
            out.append(
                Violation(
                    path,
                    f"placeholder {{{name}}} names nothing this template sets"
                    f"{suggest(name, names)}",
                )
            )
