"""Simulated call results for the sandbox (`menuflow test` turns, `menuflow chat`): a sandbox
runs no call, so whoever drives it says what the business's API gave, in one small JSON shape:

    {"status": 200, "json": {"zone": "B"}}   the endpoint answered (status: default 200)
    {"status": 502, "body": "Bad Gateway"}    answered with a body that is not JSON
    {"timeout": true}                         no answer within the step's timeout
    {"failed": true}                          no answer at all (refused, reset)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from menuflow.v1 import flow_pb2

KEYS = frozenset({"status", "json", "body", "timeout", "failed"})


def sandbox_call_result(value: Any) -> flow_pb2.SandboxCallResult:
    """The shape above as RunSandbox's call_result; ValueError says what is wrong."""
    if not isinstance(value, Mapping):
        raise ValueError('a call result is an object, like {"status": 200, "json": {...}}')
    unknown = sorted(set(value) - KEYS)
    if unknown:
        raise ValueError(f"unknown keys {unknown} (a call result has {sorted(KEYS)})")
    if value.get("timeout") is True or value.get("failed") is True:
        if len(value) > 1:
            raise ValueError('"timeout" or "failed" stands alone: there was no answer')
        kind = "TIMEOUT" if value.get("timeout") else "FAILED"
        return flow_pb2.SandboxCallResult(
            kind=flow_pb2.CallResultKind.Value(f"CALL_RESULT_KIND_{kind}")
        )
    if "timeout" in value or "failed" in value:
        raise ValueError('"timeout" and "failed" are true or absent')
    status = value.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError('"status" is an HTTP status, 100 to 599')
    if "json" in value and "body" in value:
        raise ValueError('give "json" (a JSON value) or "body" (text), not both')
    body = value.get("body", "")
    if not isinstance(body, str):
        raise ValueError('"body" is text; a JSON answer goes in "json"')
    if "json" in value:
        body = json.dumps(value["json"], ensure_ascii=False)
    return flow_pb2.SandboxCallResult(
        kind=flow_pb2.CALL_RESULT_KIND_ANSWERED, status_code=status, body=body
    )


def describe(call: flow_pb2.SandboxCall) -> str:
    """A pending call in one line, for transcripts and the chat."""
    body = f" {call.body_json}" if call.body_json else ""
    return f"{call.method} {call.endpoint}{call.path}{body}"
