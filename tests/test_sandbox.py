"""RunSandbox over a real gRPC channel against a real flowsvc: the real engine against any
version (drafts and unsaved templates included), the replies in the response, nothing written."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, json_format

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import text_of
from tests.database import row_counts
from tests.test_templates import MENU, bad_request, definition

pytestmark = pytest.mark.usefixtures("seeded")


class Sandbox:
    """A sandbox customer: keeps the conversation between turns, as a client must."""

    def __init__(self, stub: flow_pb2_grpc.FlowServiceStub, **request: Any) -> None:
        self.stub = stub
        self.request = request
        self.conversation: flow_pb2.SandboxConversation | None = None
        self.last = flow_pb2.RunSandboxResponse()

    def turn(self, silence: timedelta | None = None, **said: Any) -> flow_pb2.RunSandboxResponse:
        request = flow_pb2.RunSandboxRequest(conversation=self.conversation, **self.request, **said)
        if silence is not None:
            request.silence.CopyFrom(duration_pb2.Duration(seconds=int(silence.total_seconds())))
        self.last = self.stub.RunSandbox(request)
        has = self.last.HasField("conversation")
        self.conversation = self.last.conversation if has else None
        return self.last

    def tap(self, option_id: str) -> flow_pb2.RunSandboxResponse:
        return self.turn(selection=flow_pb2.Selection(id=option_id))

    @property
    def texts(self) -> list[str]:
        return [text_of(json_format.MessageToDict(body)) for body in self.last.messages]


def test_the_order_flow_runs_in_the_sandbox_and_writes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    before = row_counts(database_url)
    sandbox = Sandbox(stub, template_name="new_order")

    sandbox.turn()
    assert sandbox.last.outcome == flow_pb2.OUTCOME_STARTED
    assert sandbox.texts == ["🛒 What would you like to order?"]
    sandbox.tap("coffee")
    assert sandbox.conversation is not None and sandbox.conversation.step == "quantity"
    sandbox.turn(text="two")
    assert sandbox.last.outcome == flow_pb2.OUTCOME_INVALID_INPUT
    sandbox.turn(text="2")
    assert sandbox.texts == ["Pickup or delivery?"]
    sandbox.tap("pickup")
    assert "2 x Coffee = $7.00" in sandbox.texts[0]
    done = sandbox.tap("yes")

    assert done.outcome == flow_pb2.OUTCOME_COMPLETED
    assert not done.HasField("conversation")
    assert f"Your order number is {done.result_reference}" in sandbox.texts[0]
    result = json_format.MessageToDict(done.result)
    assert (result["product_title"], result["quantity"], result["total"]) == ("Coffee", 2, "7.00")
    assert row_counts(database_url) == before


def test_a_first_message_matches_keywords_with_the_tried_version_standing_in(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    menu = copy.deepcopy(MENU)
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=definition("greeting", menu, keywords=("greetings",)), draft=True
        )
    )

    tried = Sandbox(stub, template_name="greeting").turn(text="greetings")
    live_only = Sandbox(stub).turn(text="greetings")

    assert tried.outcome == flow_pb2.OUTCOME_STARTED and tried.conversation.flow == "greeting"
    assert live_only.conversation.flow == "main_menu"  # the default: the draft is not live


def test_silence_past_the_expiry_expires_the_sandbox_conversation(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    sandbox = Sandbox(stub, template_name="new_order")
    sandbox.turn()

    sandbox.turn(silence=timedelta(hours=25), text="hi")

    assert sandbox.last.outcome == flow_pb2.OUTCOME_EXPIRED
    assert sandbox.conversation is not None and sandbox.conversation.flow == "main_menu"


def test_unsaved_templates_run_turn_after_turn(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    sandbox = Sandbox(stub, template_name="greeting", templates=[definition("greeting")])

    sandbox.turn()
    assert sandbox.conversation is not None and sandbox.conversation.version == 0
    sandbox.tap("b")

    assert sandbox.last.outcome == flow_pb2.OUTCOME_COMPLETED
    assert sandbox.texts == ["You chose B."]


def test_an_unsaved_template_with_problems_is_refused_naming_each_and_nothing_is_written(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str
) -> None:
    menu = copy.deepcopy(MENU)
    menu["steps"]["initial"]["next_steps"]["a"] = "nowhere"
    before = row_counts(database_url)

    with pytest.raises(grpc.RpcError) as raised:
        Sandbox(stub, template_name="greeting", templates=[definition("greeting", menu)]).turn()

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    problems = bad_request(raised.value)
    assert any(f.startswith("templates[0].") and "nowhere" in d for f, d in problems), problems
    assert row_counts(database_url) == before


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (flow_pb2.RunSandboxRequest(template_name="nope"), grpc.StatusCode.NOT_FOUND),
        (
            flow_pb2.RunSandboxRequest(template_name="new_order", version=9),
            grpc.StatusCode.NOT_FOUND,
        ),
        (flow_pb2.RunSandboxRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (
            flow_pb2.RunSandboxRequest(
                template_name="new_order",
                conversation=flow_pb2.SandboxConversation(flow="new_order", step="initial"),
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
    ids=["unknown-template", "unknown-version", "nothing-to-start", "no-input-in-a-conversation"],
)
def test_bad_sandbox_turns_are_clear_errors(
    stub: flow_pb2_grpc.FlowServiceStub, request_: Any, code: grpc.StatusCode
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.RunSandbox(request_)
    assert raised.value.code() == code
