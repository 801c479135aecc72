"""docs/templates.md: every JSON example parses and is a template the real validator accepts, so
a reader can copy any of them into a file and create it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from menuflow.v1 import flow_pb2_grpc
from tests.chat import Chat

try:
    from flowsvc.validation import validate_template  # where it is moving
except ImportError:
    from flowsvc.engine.validation import validate_template

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```json\n(.*?)^```", DOC, flags=re.MULTILINE | re.DOTALL)
SHIPPED = {p.stem for p in (ROOT / "flowsvc" / "default_templates").glob("*.json")}


def test_the_doc_has_json_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example{i + 1}" for i in range(len(BLOCKS))])
def test_every_json_example_parses_and_validates(block: str) -> None:
    template: dict[str, Any] = json.loads(block)  # no comments, no fragments

    violations = validate_template(
        template["name"],
        template.get("trigger_keywords", []),
        template["menu_structure"],
        known_templates=SHIPPED,
    )

    assert [str(v) for v in violations] == []


# The doc's own examples of keyword matching, against the shipped templates (None: no keyword
# matches, so the default template starts).
KEYWORD_EXAMPLES = {
    "I need help with my new order": "new_order",
    "Hello, I need help": "main_menu",
    "track order please, help": "support",
    "my orders": "account",
    "HÉLLO": "main_menu",
    "this is fine": None,
    "my old orders": None,
}


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("text", "flow"), KEYWORD_EXAMPLES.items(), ids=list(KEYWORD_EXAMPLES))
def test_the_docs_keyword_examples_hold(
    stub: flow_pb2_grpc.FlowServiceStub, text: str, flow: str | None
) -> None:
    assert text.lower() in " ".join(DOC.lower().split())
    customer = Chat(stub, phone_number=f"1555000{abs(hash(text)) % 10_000:04d}")
    customer.say("cancel")  # no conversation either way

    answer = customer.say(text)

    assert answer.conversation.flow == (flow or "main_menu")  # no match: the default template
