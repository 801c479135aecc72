"""A customer talking to a real flowsvc over gRPC, for tests: send text or taps, read replies."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from menuflow.v1 import flow_pb2, flow_pb2_grpc

BUSINESS = "106540352242922"
_ids = itertools.count(1)


def new_message_id() -> str:
    return f"wamid.test{next(_ids):08d}"


@dataclass
class Chat:
    stub: flow_pb2_grpc.FlowServiceStub
    phone_number: str = "16505551234"
    phone_number_id: str = BUSINESS
    contact_name: str = "Sheena Nelson"
    last: flow_pb2.HandleMessageResponse | None = field(default=None, repr=False)

    @property
    def customer(self) -> flow_pb2.Customer:
        return flow_pb2.Customer(
            phone_number_id=self.phone_number_id, phone_number=self.phone_number
        )

    def message(self, message_id: str | None = None, **content: Any) -> flow_pb2.InboundMessage:
        return flow_pb2.InboundMessage(
            message_id=message_id or new_message_id(),
            customer=self.customer,
            contact_name=self.contact_name,
            **content,
        )

    def send(
        self, message: flow_pb2.InboundMessage, **request: Any
    ) -> flow_pb2.HandleMessageResponse:
        self.last = self.stub.HandleMessage(
            flow_pb2.HandleMessageRequest(message=message, **request)
        )
        return self.last

    def say(self, text: str, **request: Any) -> flow_pb2.HandleMessageResponse:
        return self.send(self.message(text=text), **request)

    def tap(self, option_id: str, title: str = "") -> flow_pb2.HandleMessageResponse:
        return self.send(self.message(selection=flow_pb2.Selection(id=option_id, title=title)))

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The Graph API request bodies the last message produced."""
        assert self.last is not None
        return [json.loads(m.body_json) for m in self.last.messages]

    @property
    def texts(self) -> list[str]:
        """What the customer reads: text bodies and interactive bodies, in order."""
        return [text_of(body) for body in self.bodies]

    @property
    def options(self) -> list[str]:
        """The ids of the buttons or rows of the last interactive message."""
        for body in reversed(self.bodies):
            if body["type"] == "interactive":
                return option_ids(body)
        return []


def text_of(body: dict[str, Any]) -> str:
    if body["type"] == "text":
        return str(body["text"]["body"])
    return str(body["interactive"]["body"]["text"])


def option_ids(body: dict[str, Any]) -> list[str]:
    interactive = body["interactive"]
    if interactive["type"] == "button":
        return [b["reply"]["id"] for b in interactive["action"]["buttons"]]
    return [row["id"] for s in interactive["action"]["sections"] for row in s["rows"]]
