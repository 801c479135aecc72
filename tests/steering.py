"""Test helpers for conversations other services steer: the payment example's template, requests
with Python values, and a customer who wrote some hours ago."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat

PAY_ORDER = Path(__file__).parent / "data" / "pay_order.json"


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    found = struct_pb2.Struct()
    found.update(values)
    return found


def create_pay_order(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    data = json.loads(PAY_ORDER.read_text())
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=flow_pb2.TemplateDefinition(
                name=data["name"], menu_structure=struct(data["menu_structure"])
            )
        )
    )


def wrote_hours_ago(chat: Chat, hours: float, text: str = "thanks") -> None:
    """The customer's message, sent `hours` ago (as a late webhook would say)."""
    sent = timestamp_pb2.Timestamp()
    sent.FromDatetime(datetime.now(UTC) - timedelta(hours=hours))
    chat.send(chat.message(text=text, sent_time=sent))


def order_ready(payload: str = "") -> flow_pb2.MessageTemplate:
    """The "your order is ready" template: a body parameter, optionally a quick reply."""
    template = flow_pb2.MessageTemplate(
        name="order_ready",
        language="en_US",
        body=[flow_pb2.TemplateParameter(text="K7M4Q2")],
    )
    if payload:
        template.buttons.append(flow_pb2.TemplateButton(index=0, quick_reply_payload=payload))
    return template


def bodies(messages: Any) -> list[dict[str, Any]]:
    return [json.loads(m.body_json) for m in messages]
