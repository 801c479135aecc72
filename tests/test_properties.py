"""Properties over a real gRPC channel: any template JSON gets a verdict (OK, or INVALID_ARGUMENT
with a google.rpc.BadRequest listing the problems), never an internal error; any message at any
point of a conversation gets replies within WhatsApp's limits, or INVALID_ARGUMENT."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, event, given, settings, strategies as st

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat

pytestmark = pytest.mark.usefixtures("seeded")

TEMPLATES = Path(__file__).resolve().parents[1] / "flowsvc" / "default_templates"
DEFAULTS = [json.loads(path.read_text()) for path in sorted(TEMPLATES.glob("*.json"))]
BOUNDED = settings(
    max_examples=150,
    deadline=None,
    # The server and database serve every example; each example leaves them as it found them.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
TEMPLATE_WORDS = [
    "type", "header", "body", "footer", "action", "steps", "initial", "text", "button",
    "buttons", "reply", "id", "title", "description", "sections", "rows", "next_step",
    "next_steps", "prompt", "validation", "context_key", "error_message", "end_conversation",
    "compute", "set", "lookup", "save_result", "currency", "min", "max", "pattern", "list",
    "flow:main_menu", "main_menu", "order_flow", "{order_id}", "{total:money}",
]  # fmt: skip
NASTY = [
    "", " ", "x" * 5000, "{", "{0.__class__}", "price * quantity", "1/0", "(" * 200,
    "\u202e", "😀" * 30, -1, 0, 1e308, 2**53, True, None, [], {},
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(TEMPLATE_WORDS)
    | st.sampled_from(NASTY)
)
keys = st.sampled_from(TEMPLATE_WORDS) | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=40,
)
_numbers = itertools.count(1)


def verdict(stub: flow_pb2_grpc.FlowServiceStub, template: dict[str, Any]) -> None:
    """ValidateTemplate answers OK, or INVALID_ARGUMENT with every problem in a BadRequest."""
    definition = flow_pb2.TemplateDefinition(
        name=str(template.get("name", "")),
        trigger_keywords=[str(k) for k in template.get("trigger_keywords") or []],
    )
    definition.menu_structure.update(template.get("menu_structure") or {})
    try:
        answer = stub.ValidateTemplate(
            flow_pb2.ValidateTemplateRequest(template=definition), timeout=30
        )
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
        assert status is not None
        problems = error_details_pb2.BadRequest()
        assert len(status.details) == 1 and status.details[0].Unpack(problems)
        assert problems.field_violations
        assert all(v.field and v.description for v in problems.field_violations)
        event("invalid")
    else:
        assert answer.type != flow_pb2.TEMPLATE_TYPE_UNSPECIFIED
        event("valid")


@BOUNDED
@given(
    name=st.text(max_size=80),
    keywords=st.lists(st.text(max_size=30), max_size=4),
    menu=st.dictionaries(keys, json_values, max_size=8),
)
def test_any_template_json_gets_a_verdict(
    stub: flow_pb2_grpc.FlowServiceStub, name: str, keywords: list[str], menu: dict[str, Any]
) -> None:
    verdict(stub, {"name": name, "trigger_keywords": keywords, "menu_structure": menu})


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into a JSON value, the value itself first."""
    yield prefix
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        yield from paths(item, (*prefix, key))


@st.composite
def mutated_defaults(draw: st.DrawFn) -> dict[str, Any]:
    """A shipped template whose menu_structure has one to three values replaced, deleted or
    added anywhere."""
    template = copy.deepcopy(draw(st.sampled_from(DEFAULTS)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(paths(template["menu_structure"]))[1:]))
        *parents, last = path
        holder = template["menu_structure"]
        for key in parents:
            holder = holder[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del holder[last]
        elif action == "add" and isinstance(holder[last], dict):
            holder[last][draw(keys)] = draw(json_values)
        else:
            holder[last] = draw(_like(holder[last]))
    return template


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Mostly a value of the same kind (so that many mutants still validate), sometimes anything."""
    if isinstance(value, str):
        same: st.SearchStrategy[Any] = st.text(max_size=80) | st.sampled_from(TEMPLATE_WORDS)
    elif isinstance(value, bool):
        same = st.booleans()
    elif isinstance(value, int | float):
        same = st.integers(-(10**6), 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    else:
        same = json_values
    return same | same | json_values


@BOUNDED
@given(template=mutated_defaults())
def test_any_mutation_of_a_shipped_template_gets_a_verdict(
    stub: flow_pb2_grpc.FlowServiceStub, template: dict[str, Any]
) -> None:
    verdict(stub, template)


def within_whatsapp_limits(body: dict[str, Any]) -> None:
    if body["type"] == "text":
        assert 0 < len(body["text"]["body"]) <= 4096
        return
    interactive = body["interactive"]
    text = interactive["body"]["text"]
    assert 0 < len(text) <= (1024 if interactive["type"] == "button" else 4096)
    if "footer" in interactive:
        assert len(interactive["footer"]["text"]) <= 60
    header = interactive.get("header", {"type": "text", "text": ""})
    if header["type"] == "text":
        assert len(header["text"]) <= 60
    else:  # a photo, video or document header, by link or media id, on reply buttons only
        assert interactive["type"] == "button"
        assert set(header[header["type"]]) <= {"link", "id", "filename"}


WORDS = ["hi", "order", "coffee", "2", "yes", "back", "cancel", "menu", "support", "my orders"]
OPTIONS = ["new_order", "coffee", "tea", "yes", "no", "support", "account", "track_order"]
inbound = st.one_of(
    st.builds(lambda text: {"text": text}, st.text(max_size=300) | st.sampled_from(WORDS)),
    st.builds(
        lambda option, title: {"selection": flow_pb2.Selection(id=option, title=title)},
        st.sampled_from(OPTIONS) | st.text(max_size=40),
        st.text(max_size=40),
    ),
    st.builds(lambda kind: {"unsupported_type": kind}, st.sampled_from(["image", "sticker", "x"])),
)


@BOUNDED
@given(messages=st.lists(inbound, min_size=1, max_size=8))
def test_any_messages_get_replies_within_whatsapp_limits(
    stub: flow_pb2_grpc.FlowServiceStub, messages: list[dict[str, Any]]
) -> None:
    chat = Chat(stub, f"1666{next(_numbers):07d}")
    for content in messages:
        response = chat.send(chat.message(**content))
        assert response.outcome != flow_pb2.OUTCOME_UNSPECIFIED
        assert response.messages, "a customer never hears nothing"
        for body in chat.bodies:
            within_whatsapp_limits(body)
