"""Drafts, publishing, rollback and diffs over a real gRPC channel against a real flowsvc: a draft
is invisible to customers (keywords, starts, other templates' targets) until it is published,
and running conversations keep their version."""

from __future__ import annotations

import copy
from typing import Any

import grpc
import pytest

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.database import row_counts
from tests.test_templates import MENU, definition, targeting


def changed_menu(body: str) -> dict[str, Any]:
    menu = copy.deepcopy(MENU)
    menu["body"]["text"] = body
    return menu


def draft_of(
    stub: flow_pb2_grpc.FlowServiceStub,
    body: str,
    name: str = "greeting",
    keywords: tuple[str, ...] = ("hello",),
) -> int:
    template = definition(name, changed_menu(body), keywords=keywords)
    response = stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=template, draft=True))
    assert response.changed and response.template.draft and not response.template.live
    return response.template.version


def test_a_new_draft_is_invisible_to_customers_until_published(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    created = stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(template=definition(), draft=True)
    ).template
    assert (created.version, created.draft, created.live, created.live_version) == (
        1,
        True,
        False,
        0,
    )
    chat = Chat(stub)

    chat.say("hello")
    assert chat.last is not None and chat.last.outcome == flow_pb2.OUTCOME_HELP
    with pytest.raises(grpc.RpcError) as raised:
        stub.StartConversation(
            flow_pb2.StartConversationRequest(customer=chat.customer, template_name="greeting")
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no live version" in str(raised.value.details())

    published = stub.PublishTemplate(flow_pb2.PublishTemplateRequest(name="greeting"))
    assert published.previous_live_version == 0
    assert (published.template.version, published.template.live) == (1, True)
    assert not published.template.draft
    chat.say("hello")
    assert chat.last is not None and chat.last.outcome == flow_pb2.OUTCOME_STARTED
    assert chat.texts == ["Hello! What would you like?"]


def test_a_draft_of_a_live_template_changes_nothing_until_published_and_rollback_restores(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    version = draft_of(stub, "Version two speaking.")
    assert version == 2
    running = Chat(stub, phone_number="16505550001")
    running.say("hello")
    assert running.texts == ["Hello! What would you like?"]

    latest = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template
    assert (latest.version, latest.draft, latest.live_version) == (2, True, 1)

    published = stub.PublishTemplate(flow_pb2.PublishTemplateRequest(name="greeting", version=2))
    assert published.previous_live_version == 1
    fresh = Chat(stub, phone_number="16505550002")
    fresh.say("hello")
    assert fresh.texts == ["Version two speaking."]
    running.tap("a")  # the running conversation keeps version 1
    assert running.last is not None and running.last.outcome == flow_pb2.OUTCOME_COMPLETED
    assert running.texts == ["You chose A."]

    rolled = stub.PublishTemplate(flow_pb2.PublishTemplateRequest(name="greeting", version=1))
    assert (rolled.previous_live_version, rolled.template.version) == (2, 1)
    again = Chat(stub, phone_number="16505550003")
    again.say("hello")
    assert again.texts == ["Hello! What would you like?"]
    versions = stub.ListTemplateVersions(
        flow_pb2.ListTemplateVersionsRequest(name="greeting")
    ).versions
    assert [(v.version, v.live, v.draft) for v in versions] == [(2, False, False), (1, True, False)]


def test_other_templates_targets_and_starts_use_the_live_version(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.ImportTemplates(
        flow_pb2.ImportTemplatesRequest(
            templates=[definition("target", keywords=()), definition("entry", targeting("target"))]
        )
    )
    draft_of(stub, "Draft target.", name="target", keywords=())
    chat = Chat(stub)
    chat.say("hello")
    chat.tap("b")
    assert chat.texts == ["Hello! What would you like?"]
    started = stub.StartConversation(
        flow_pb2.StartConversationRequest(customer=chat.customer, template_name="target")
    )
    assert started.conversation.template_version == 1


def test_import_as_drafts_keeps_the_live_versions(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    imported = stub.ImportTemplates(
        flow_pb2.ImportTemplatesRequest(
            templates=[definition(menu=changed_menu("Imported draft."))], draft=True
        )
    ).templates
    assert [(t.version, t.action) for t in imported] == [(2, flow_pb2.IMPORT_ACTION_UPDATED)]
    head = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template
    assert (head.version, head.live_version, head.draft) == (2, 1, True)

    # Writing the same content live again is a change: it makes a live version of it.
    live = stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(template=definition(menu=changed_menu("Imported draft.")))
    )
    assert live.changed and (live.template.version, live.template.live) == (3, True)


def test_diff_names_the_steps_texts_options_and_targets_that_changed(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    menu = changed_menu("Hi there!")
    menu["action"]["buttons"][1]["reply"]["title"] = "Option Bee"
    menu["action"]["buttons"].append({"type": "reply", "reply": {"id": "c", "title": "C"}})
    menu["steps"]["initial"]["next_steps"] = {"a": "done_b", "b": "done_b", "c": "done_c"}
    menu["steps"]["done_c"] = {"prompt": "C it is.", "end_conversation": True}
    del menu["steps"]["done_a"]
    menu["steps"]["done_b"]["prompt"] = "B, then."
    stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=definition(menu=menu, keywords=("hello", "hey")), draft=True
        )
    )

    diff = stub.DiffTemplateVersions(flow_pb2.DiffTemplateVersionsRequest(name="greeting"))

    kinds = flow_pb2.ChangeKind.Name
    changes = [(kinds(c.kind), c.step, c.field, c.old_value, c.new_value) for c in diff.changes]
    assert (diff.from_version, diff.to_version) == (1, 2)
    assert changes == [
        ("CHANGE_KIND_SETTING_CHANGED", "", "trigger_keywords", '["hello"]', '["hello", "hey"]'),
        (
            "CHANGE_KIND_TEXT_CHANGED",
            "initial",
            "message.body",
            "Hello! What would you like?",
            "Hi there!",
        ),
        ("CHANGE_KIND_TEXT_CHANGED", "initial", "options.b.title", "Option B", "Option Bee"),
        ("CHANGE_KIND_OPTION_ADDED", "initial", "options.c", "", "C"),
        ("CHANGE_KIND_TARGET_CHANGED", "initial", "next_steps.a", "done_a", "done_b"),
        ("CHANGE_KIND_TARGET_CHANGED", "initial", "next_steps.c", "", "done_c"),
        ("CHANGE_KIND_TEXT_CHANGED", "done_b", "prompt", "You chose B.", "B, then."),
        ("CHANGE_KIND_STEP_ADDED", "done_c", "", "", ""),
        ("CHANGE_KIND_STEP_REMOVED", "done_a", "", "", ""),
    ]


@pytest.mark.parametrize(
    "request_",
    [
        flow_pb2.PublishTemplateRequest(name="nope"),
        flow_pb2.PublishTemplateRequest(name="greeting", version=9),
    ],
    ids=["unknown-template", "unknown-version"],
)
def test_publishing_what_does_not_exist_is_not_found_and_changes_nothing(
    stub: flow_pb2_grpc.FlowServiceStub, database_url: str, request_: Any
) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition(), draft=True))
    before = row_counts(database_url)
    with pytest.raises(grpc.RpcError) as raised:
        stub.PublishTemplate(request_)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert row_counts(database_url) == before
    head = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template
    assert head.live_version == 0
