"""The tracker every outbound message carries (Meta's `biz_opaque_callback_data`): its outbox id.

Meta echoes the tracker in the message's status webhooks, so a status names the outbox row it is
about even when the sender died before its ack: FlowService then records the message as sent
instead of letting another gateway send it again. Meta allows up to 512 characters.
"""

from __future__ import annotations

import json

PREFIX = "menuflow:outbox:"
FIELD = "biz_opaque_callback_data"


def callback_data(outbox_id: int) -> str:
    return f"{PREFIX}{outbox_id}"


def outbox_id(data: str) -> int:
    """The outbox id a tracker names; 0 when it is not one of ours."""
    digits = data.removeprefix(PREFIX)
    if digits == data or not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        return 0
    return int(digits)


def tracked(body_json: str, outbox_id: int) -> str:
    """`body_json` (a Graph API message object) with the tracker added.

    Spliced in before the closing brace rather than parsed and dumped again: this runs for every
    send, and FlowService writes the bodies as compact JSON objects.
    """
    body = body_json.rstrip()
    if body.endswith("}") and body.lstrip().startswith("{") and f'"{FIELD}"' not in body:
        separator = "" if body[:-1].rstrip().endswith("{") else ","
        return f'{body[:-1]}{separator}"{FIELD}":"{callback_data(outbox_id)}"}}'
    document = json.loads(body_json)
    document[FIELD] = callback_data(outbox_id)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
