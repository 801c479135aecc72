"""A WhatsApp Flow's reply (interactive nfm_reply) read by its documented types.

Meta sends the customer's answers as `nfm_reply.response_json`, a JSON *string* holding an object
with the `flow_token` of the Flow message and the Flow's fields (Meta, "Receiving Flow Response").
What cannot be read as that (not a string, not JSON, not an object, NaN or Infinity, too long) is
refused: the message is skipped with its reason, and the other items of the POST still count.
What can be repaired is: over-long keys and texts, too many fields or items, and nesting deeper
than a Flow writes are dropped; integers beyond what a double holds exactly are kept as text.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.json_fields import NAME_CHARS, TEXT_CHARS, as_str
from menuflow.v1 import flow_pb2

MAX_RESPONSE_CHARS = 65_536  # response_json as a string; a Flow's form is far smaller
MAX_FIELDS = 100  # fields of one object kept, and items of one list
MAX_DEPTH = 6  # objects and lists within the response
_EXACT = 2**53  # integers a protobuf double (Struct's number) holds exactly


class Refused(Exception):
    """An item the gateway will not pass on, and why (logged with the message id)."""

    def __init__(self, reason: str, message_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.message_id = message_id


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read_flow_reply(reply: dict[str, Any]) -> flow_pb2.InboundFlowReply:
    """The token, fields and chat text of an nfm_reply object; raises Refused."""
    raw = reply.get("response_json")
    if not isinstance(raw, str):
        raise Refused("nfm_reply.response_json is missing or not a string")
    if len(raw) > MAX_RESPONSE_CHARS:
        raise Refused(f"nfm_reply.response_json is longer than {MAX_RESPONSE_CHARS} characters")
    try:
        fields = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise Refused(f"nfm_reply.response_json is not JSON: {str(error)[:120]}") from None
    if not isinstance(fields, dict):
        raise Refused(f"nfm_reply.response_json is a JSON {type(fields).__name__}, not an object")
    token = as_str(fields.pop("flow_token", ""), NAME_CHARS)
    result = flow_pb2.InboundFlowReply(flow_token=token, body=as_str(reply.get("body"), NAME_CHARS))
    result.response.update(_object(fields, 1))
    return result


def _object(fields: dict[Any, Any], depth: int) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in fields.items():
        name = as_str(key, NAME_CHARS)
        if not name:
            continue
        cleaned = _value(value, depth)
        if cleaned is not _DROP:
            kept[name] = cleaned
        if len(kept) == MAX_FIELDS:
            break
    return kept


class _Drop:
    pass


_DROP = _Drop()


def _value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | float):
        return value  # floats are finite: NaN and Infinity were refused
    if isinstance(value, int):
        return value if -_EXACT < value < _EXACT else str(value)
    if isinstance(value, str):
        text = as_str(value, TEXT_CHARS)
        return text if text or not value else _DROP
    if depth >= MAX_DEPTH:
        return _DROP
    if isinstance(value, dict):
        return _object(value, depth + 1)
    if isinstance(value, list):
        items = (_value(item, depth + 1) for item in value[:MAX_FIELDS])
        return [item for item in items if item is not _DROP]
    return _DROP
