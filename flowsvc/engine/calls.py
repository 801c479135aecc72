"""Calls to the business's HTTP APIs (a step's `call`), the engine's side: pure.

Entering a call step decides a CallRequest (which endpoint, method, path and body, filled from
the context); the service queues it in the transaction and something outside the transaction
(the gateway) runs it. Its CallResult comes back as a turn of its own, and `outcome_of` says
where the flow goes: the step's next_step when the endpoint answered 2xx with JSON holding every
mapped field (copied into the context), `on_error` on an error status, a refused connection or a
response lacking a mapped field, `on_timeout` (default: on_error) when it did not answer in time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowsvc.engine.render import PLACEHOLDER, fill, fill_url

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_TIMEOUT_SECONDS = 30.0
DEFAULT_TIMEOUT_SECONDS = 10.0
OK, ERROR, TIMEOUT = "ok", "error", "timeout"
"""A call's result kinds: the endpoint answered (any status), it failed to (refused, reset,
not retried), or it did not answer within the step's timeout."""
_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class CallSpec:
    """A step's `call` as the template writes it (docs/templates.md, "Calls")."""

    endpoint: str
    method: str = "GET"
    path: str = "/"
    body: Any = None  # a JSON value whose strings may hold placeholders; None: no body
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    map: Mapping[str, str] = field(default_factory=dict)  # context key -> response field path
    on_error: str = ""
    on_timeout: str = ""  # "": on_error

    @property
    def timeout_target(self) -> str:
        return self.on_timeout or self.on_error


@dataclass(frozen=True)
class CallRequest:
    """A call the decision asks for: queued with the turn, run outside the transaction."""

    endpoint: str
    method: str
    path: str
    body_json: str  # "": no body
    timeout_seconds: float
    step: str  # the call step the conversation waits in


@dataclass(frozen=True)
class CallResult:
    """What running a call gave: `kind` (OK, ERROR, TIMEOUT), the HTTP status when there was
    one, and the response body (parsed JSON, None when it was not JSON)."""

    kind: str
    status: int = 0
    body: Any = None
    detail: str = ""  # why, for the event (never shown to the customer)


def parse_call(raw: Any) -> CallSpec | None:
    """A step's `call` object (already validated) as a CallSpec; None when there is none."""
    if not isinstance(raw, Mapping) or not isinstance(raw.get("endpoint"), str):
        return None
    timeout = raw.get("timeout_seconds")
    mapping = raw.get("map")
    method = raw.get("method")
    return CallSpec(
        endpoint=raw["endpoint"],
        method=method.upper() if isinstance(method, str) else "GET",
        path=raw["path"] if isinstance(raw.get("path"), str) else "/",
        body=raw.get("body"),
        timeout_seconds=float(timeout)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout > 0
        else DEFAULT_TIMEOUT_SECONDS,
        map={str(k): str(v) for k, v in mapping.items()} if isinstance(mapping, Mapping) else {},
        on_error=raw["on_error"] if isinstance(raw.get("on_error"), str) else "",
        on_timeout=raw["on_timeout"] if isinstance(raw.get("on_timeout"), str) else "",
    )


def request_for(spec: CallSpec, step: str, context: Mapping[str, Any]) -> CallRequest:
    """The call a step makes with this context: placeholders in the path are filled
    percent-encoded (a value stays one segment), in the body's strings as text, and a body string
    that is one placeholder alone takes the value as it is (a number stays a number)."""
    body = "" if spec.body is None else json.dumps(_filled(spec.body, context), ensure_ascii=False)
    return CallRequest(
        endpoint=spec.endpoint,
        method=spec.method,
        path=fill_url(spec.path, context),
        body_json=body,
        timeout_seconds=min(spec.timeout_seconds, MAX_TIMEOUT_SECONDS),
        step=step,
    )


def outcome_of(spec: CallSpec, result: CallResult) -> tuple[str, dict[str, Any]]:
    """Where a call's result goes (a target; "": the step's next_step) and what it adds to the
    context."""
    if result.kind == TIMEOUT:
        return spec.timeout_target, {}
    if failure(spec, result):
        return spec.on_error, {}
    return "", {key: field_at(result.body, path)[1] for key, path in spec.map.items()}


def failure(spec: CallSpec, result: CallResult) -> str:
    """Why a call's result takes the error (or timeout) path, in a few words; "" on success.
    A response lacking a mapped field is an error: the steps after it read that key."""
    if result.kind == TIMEOUT:
        return result.detail or f"no answer within {spec.timeout_seconds:g} s"
    if result.kind != OK:
        return result.detail or "no answer"
    if not 200 <= result.status < 300:
        return f"status {result.status}"
    for path in spec.map.values():
        if not field_at(result.body, path)[0]:
            return f"the response lacks the mapped field {path!r}"
    return ""


def field_at(document: Any, path: str) -> tuple[bool, Any]:
    """The value at a dotted path ("address.zone", "slots.0.time") in a JSON document."""
    value = document
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def body_placeholders(body: Any) -> set[str]:
    """The context names a call's body reads (for validation)."""
    if isinstance(body, str):
        return {match.group(1) for match in PLACEHOLDER.finditer(body)}
    if isinstance(body, Mapping):
        return set().union(*(body_placeholders(v) for v in body.values()))
    if isinstance(body, list):
        return set().union(*(body_placeholders(v) for v in body))
    return set()


def _filled(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole is not None:
            return context.get(whole.group(1))
        return fill(value, context)
    if isinstance(value, Mapping):
        return {str(k): _filled(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, context) for v in value]
    return value
