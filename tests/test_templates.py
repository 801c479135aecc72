"""Template lifecycle over a real gRPC channel against a real flowsvc and database."""

from __future__ import annotations

import copy
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowsvc.validation.steps import STEP_KEYS
from menuflow.v1 import flow_pb2, flow_pb2_grpc

MENU: dict[str, Any] = {
    "type": "button",
    "body": {"text": "Hello! What would you like?"},
    "action": {
        "buttons": [
            {"type": "reply", "reply": {"id": "a", "title": "Option A"}},
            {"type": "reply", "reply": {"id": "b", "title": "Option B"}},
        ]
    },
    "steps": {
        "initial": {"next_steps": {"a": "done_a", "b": "done_b"}},
        "done_a": {"prompt": "You chose A.", "end_conversation": True},
        "done_b": {"prompt": "You chose B.", "end_conversation": True},
    },
}


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


def definition(
    name: str = "greeting",
    menu: dict[str, Any] | None = None,
    keywords: tuple[str, ...] = ("hello",),
    **fields: Any,
) -> flow_pb2.TemplateDefinition:
    return flow_pb2.TemplateDefinition(
        name=name,
        trigger_keywords=keywords,
        menu_structure=struct(MENU if menu is None else menu),
        **fields,
    )


def targeting(name: str) -> dict[str, Any]:
    """MENU with option B switching to template `name`."""
    menu = copy.deepcopy(MENU)
    menu["steps"]["initial"]["next_steps"]["b"] = f"flow:{name}"
    del menu["steps"]["done_b"]
    return menu


def bad_request(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of an INVALID_ARGUMENT's google.rpc.BadRequest detail."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    violations = []
    for detail in status.details:
        request = error_details_pb2.BadRequest()
        assert detail.Unpack(request)
        violations += [(v.field, v.description) for v in request.field_violations]
    return violations


def test_create_then_get_latest_and_by_version(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    created = stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition())).template

    assert (created.name, created.version, created.is_active) == ("greeting", 1, True)
    assert created.type == flow_pb2.TEMPLATE_TYPE_BUTTON
    assert list(created.trigger_keywords) == ["hello"]
    got = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template
    assert got == created
    assert stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting", version=1)).template == got


def test_create_twice_is_already_exists(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))

    with pytest.raises(grpc.RpcError) as caught:
        stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))

    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "greeting" in caught.value.details()


def test_create_inactive(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    created = stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(template=definition(is_active=False))
    ).template
    assert created.is_active is False


def test_update_writes_a_new_version_and_keeps_the_old(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    menu = copy.deepcopy(MENU)
    menu["body"]["text"] = "Welcome back!"

    response = stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(template=definition(menu=menu, keywords=("hello", "hey")))
    )

    assert response.changed
    assert response.template.version == 2
    assert response.template.menu_structure["body"]["text"] == "Welcome back!"
    old = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting", version=1)).template
    assert old.menu_structure["body"]["text"] == "Hello! What would you like?"
    assert list(old.trigger_keywords) == ["hello"]
    versions = stub.ListTemplateVersions(flow_pb2.ListTemplateVersionsRequest(name="greeting"))
    assert [v.version for v in versions.versions] == [2, 1]


def test_update_with_nothing_changed_writes_no_version(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))

    response = stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=definition()))

    assert not response.changed
    assert response.template.version == 1


def test_update_mask_changes_only_the_named_field(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))

    response = stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=flow_pb2.TemplateDefinition(name="greeting", is_active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
        )
    )

    assert (response.template.version, response.template.is_active) == (2, False)
    assert response.template.menu_structure == struct(MENU)
    assert list(response.template.trigger_keywords) == ["hello"]


def test_update_with_a_stale_expected_version_fails(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=definition(keywords=("hey",))))

    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateTemplate(
            flow_pb2.UpdateTemplateRequest(
                template=definition(keywords=("hi",)), expected_version=1
            )
        )

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template.version == 2


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.GetTemplate(flow_pb2.GetTemplateRequest(name="nope")), id="get"),
        pytest.param(
            lambda s: s.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=definition("nope"))),
            id="update",
        ),
        pytest.param(
            lambda s: s.DeleteTemplate(flow_pb2.DeleteTemplateRequest(name="nope")), id="delete"
        ),
        pytest.param(
            lambda s: s.ListTemplateVersions(flow_pb2.ListTemplateVersionsRequest(name="nope")),
            id="versions",
        ),
    ],
)
def test_unknown_template_is_not_found(stub: flow_pb2_grpc.FlowServiceStub, call: Any) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        call(stub)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in caught.value.details()


def test_unknown_version_is_not_found(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting", version=7))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_pages_through_every_template_and_filters_by_active(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    for index in range(7):
        stub.CreateTemplate(
            flow_pb2.CreateTemplateRequest(
                template=definition(
                    f"t{index}", keywords=(f"word{index}",), is_active=index % 2 == 0
                )
            )
        )

    names, token, pages = [], "", 0
    while True:
        page = stub.ListTemplates(flow_pb2.ListTemplatesRequest(page_size=3, page_token=token))
        names += [t.name for t in page.templates]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    active = stub.ListTemplates(
        flow_pb2.ListTemplatesRequest(active_filter=flow_pb2.ACTIVE_FILTER_ACTIVE)
    )
    inactive = stub.ListTemplates(
        flow_pb2.ListTemplatesRequest(active_filter=flow_pb2.ACTIVE_FILTER_INACTIVE)
    )

    assert names == [f"t{i}" for i in range(7)]
    assert pages == 3
    assert [t.name for t in active.templates] == ["t0", "t2", "t4", "t6"]
    assert [t.name for t in inactive.templates] == ["t1", "t3", "t5"]


def test_bad_page_token_is_invalid_argument(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListTemplates(flow_pb2.ListTemplatesRequest(page_token="not-a-token!"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_request(caught.value)[0][0] == "page_token"


def test_delete_removes_every_version(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=definition(keywords=("hey",))))

    response = stub.DeleteTemplate(flow_pb2.DeleteTemplateRequest(name="greeting"))

    assert (response.deleted_versions, response.ended_conversations) == (2, 0)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting", version=1))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_delete_a_template_another_targets_fails_and_keeps_it(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition("greeting")))
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=definition("hub", menu=targeting("greeting"), keywords=("hub",))
        )
    )

    with pytest.raises(grpc.RpcError) as caught:
        stub.DeleteTemplate(flow_pb2.DeleteTemplateRequest(name="greeting"))

    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "hub" in caught.value.details()
    assert stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template.version == 1


def test_validate_accepts_a_valid_template_without_saving(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    response = stub.ValidateTemplate(flow_pb2.ValidateTemplateRequest(template=definition()))

    assert response.type == flow_pb2.TEMPLATE_TYPE_BUTTON
    assert not stub.ListTemplates(flow_pb2.ListTemplatesRequest()).templates


def test_invalid_template_lists_every_problem_and_saves_nothing(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    menu = copy.deepcopy(MENU)
    menu["action"]["buttons"][0]["reply"]["title"] = "A title far longer than twenty"
    menu["steps"]["initial"]["next_steps"]["b"] = "order_flow"
    menu["steps"]["orphan"] = {"prompt": "Nobody gets here", "end_conversation": True}

    for call in (stub.ValidateTemplate, stub.CreateTemplate):
        request_type = (
            flow_pb2.ValidateTemplateRequest
            if call is stub.ValidateTemplate
            else flow_pb2.CreateTemplateRequest
        )
        with pytest.raises(grpc.RpcError) as caught:
            call(request_type(template=definition(menu=menu)))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        fields = {field for field, _ in bad_request(caught.value)}
        assert {
            "menu_structure.action.buttons[0].reply.title",
            "menu_structure.steps.initial.next_steps.b",
            "menu_structure.steps.orphan",
        } <= fields, fields
        assert "order_flow" in caught.value.details()
    assert not stub.ListTemplates(flow_pb2.ListTemplatesRequest()).templates


def test_an_invalid_update_keeps_the_current_version(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    menu = copy.deepcopy(MENU)
    del menu["steps"]

    with pytest.raises(grpc.RpcError) as caught:
        stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=definition(menu=menu)))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template.version == 1


def test_import_validates_templates_together_and_is_idempotent(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    request = flow_pb2.ImportTemplatesRequest(
        templates=[
            definition("ping", menu=targeting("pong"), keywords=("ping",)),
            definition("pong", menu=targeting("ping"), keywords=("pong",)),
        ]
    )

    first = stub.ImportTemplates(request)
    second = stub.ImportTemplates(request)

    assert [(t.name, t.version, t.action) for t in first.templates] == [
        ("ping", 1, flow_pb2.IMPORT_ACTION_CREATED),
        ("pong", 1, flow_pb2.IMPORT_ACTION_CREATED),
    ]
    assert [(t.name, t.version, t.action) for t in second.templates] == [
        ("ping", 1, flow_pb2.IMPORT_ACTION_UNCHANGED),
        ("pong", 1, flow_pb2.IMPORT_ACTION_UNCHANGED),
    ]


def test_an_invalid_import_writes_nothing(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    broken = targeting("missing")

    with pytest.raises(grpc.RpcError) as caught:
        stub.ImportTemplates(
            flow_pb2.ImportTemplatesRequest(
                templates=[definition("good"), definition("bad", menu=broken, keywords=("x",))]
            )
        )

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in bad_request(caught.value)] == [
        "templates[1].menu_structure.steps.initial.next_steps.b"
    ]
    assert not stub.ListTemplates(flow_pb2.ListTemplatesRequest()).templates


def test_a_template_with_hundreds_of_problems_still_gets_a_readable_answer(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    menu = copy.deepcopy(MENU)
    for index in range(400):  # unreachable steps with over-long prompts: 800 problems
        menu["steps"][f"orphan_{index}"] = {"prompt": "x" * 5000, "end_conversation": True}

    with pytest.raises(grpc.RpcError) as caught:
        stub.ValidateTemplate(flow_pb2.ValidateTemplateRequest(template=definition(menu=menu)))

    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = bad_request(caught.value)
    assert 10 < len(violations) < 800
    assert (
        violations[-1][1].startswith("and ")
        and violations[-1][1].endswith("more problems")
        and "\n" not in violations[-1][1]
    )


def test_the_readable_error_lists_each_problem_on_its_own_line_and_counts_the_rest(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    menu = copy.deepcopy(MENU)
    for index in range(60):  # 60 steps with an unknown key: more than the message can hold
        menu["steps"][f"done_{index}"] = {
            "prompt": "Bye.",
            "end_conversation": True,
            "entry": True,
            "next_stpe": "x",
        }

    with pytest.raises(grpc.RpcError) as caught:
        stub.ValidateTemplate(flow_pb2.ValidateTemplateRequest(template=definition(menu=menu)))

    lines = (caught.value.details() or "").split("\n")
    assert lines[0] == "template 'greeting' is invalid (60 problems):"
    shown = [line for line in lines[1:] if line.startswith("- menu_structure.steps.done_")]
    assert 2 <= len(shown) < 60  # as many as the budget holds (each names every allowed key)
    assert all(
        line.endswith(
            "(did you mean 'next_step'?): the keys allowed here are " + line.split("are ", 1)[1]
        )
        for line in shown
    )
    assert lines[-1] == f"… and {60 - len(shown)} more problems not shown here"
    assert len(lines) == len(shown) + 2


def test_one_problem_is_one_problem(stub: flow_pb2_grpc.FlowServiceStub) -> None:
    menu = copy.deepcopy(MENU)
    menu["steps"]["done_a"]["next_stpe"] = "x"

    with pytest.raises(grpc.RpcError) as caught:
        stub.ValidateTemplate(flow_pb2.ValidateTemplateRequest(template=definition(menu=menu)))

    assert (caught.value.details() or "").split("\n") == [
        "template 'greeting' is invalid (1 problem):",
        "- menu_structure.steps.done_a.next_stpe: unknown key 'next_stpe' "
        "(did you mean 'next_step'?): the keys allowed here are " + ", ".join(STEP_KEYS),
    ]


def warned(menu: dict[str, Any] | None = None) -> dict[str, Any]:
    """MENU with a prompt on 'initial', which is legal but never sent."""
    menu = copy.deepcopy(MENU if menu is None else menu)
    menu["steps"]["initial"]["prompt"] = "Pick one"
    return menu


def warning_pairs(found: Any) -> list[tuple[str, str]]:
    return [(w.field, w.description.split(":")[0]) for w in found]


WARNING = [("menu_structure.steps.initial.prompt", "is never sent")]


def test_warnings_come_back_from_validate_and_every_write_without_blocking_it(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    validated = stub.ValidateTemplate(
        flow_pb2.ValidateTemplateRequest(template=definition(menu=warned()))
    )
    created = stub.CreateTemplate(flow_pb2.CreateTemplateRequest(template=definition()))
    updated = stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(template=definition(menu=warned()))
    )
    imported = stub.ImportTemplates(
        flow_pb2.ImportTemplatesRequest(templates=[definition("other", warned(), ("other",))])
    )

    assert warning_pairs(validated.warnings) == WARNING
    assert warning_pairs(created.warnings) == []
    assert updated.changed and warning_pairs(updated.warnings) == WARNING
    assert warning_pairs(imported.templates[0].warnings) == WARNING
    assert imported.templates[0].action == flow_pb2.IMPORT_ACTION_CREATED
    stored = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="greeting")).template
    assert stored.version == 2 and stored.menu_structure["steps"]["initial"]["prompt"] == "Pick one"


def conflict(error: grpc.RpcError) -> list[tuple[str, str]]:
    return [(f, d.split(":")[0]) for f, d in bad_request(error)]


def test_a_keyword_of_another_active_template_is_refused_naming_both(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(template=definition("main", keywords=("hi",)))
    )

    with pytest.raises(grpc.RpcError) as created:
        stub.CreateTemplate(
            flow_pb2.CreateTemplateRequest(template=definition("copy", keywords=("menu", "HI!")))
        )
    with pytest.raises(grpc.RpcError) as validated:
        stub.ValidateTemplate(
            flow_pb2.ValidateTemplateRequest(template=definition("copy", keywords=("Hí",)))
        )

    assert created.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert conflict(created.value) == [
        ("trigger_keywords[1]", "'HI!' is already a trigger keyword of the active template 'main'")
    ]
    assert "only one of 'copy' and 'main'" in bad_request(created.value)[0][1]
    assert conflict(validated.value) == [
        ("trigger_keywords[0]", "'Hí' is already a trigger keyword of the active template 'main'")
    ]
    assert [t.name for t in stub.ListTemplates(flow_pb2.ListTemplatesRequest()).templates] == [
        "main"
    ]


def test_an_inactive_template_may_share_a_keyword_until_it_is_switched_on(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(template=definition("main", keywords=("hi",)))
    )
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=definition("draft", keywords=("hi",), is_active=False)
        )
    )

    with pytest.raises(grpc.RpcError) as switched_on:
        stub.UpdateTemplate(
            flow_pb2.UpdateTemplateRequest(
                template=flow_pb2.TemplateDefinition(name="draft", is_active=True),
                update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
            )
        )
    stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=flow_pb2.TemplateDefinition(name="main", is_active=False),
            update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
        )
    )
    stub.UpdateTemplate(
        flow_pb2.UpdateTemplateRequest(
            template=flow_pb2.TemplateDefinition(name="draft", is_active=True),
            update_mask=field_mask_pb2.FieldMask(paths=["is_active"]),
        )
    )

    assert conflict(switched_on.value) == [
        ("trigger_keywords[0]", "'hi' is already a trigger keyword of the active template 'main'")
    ]
    active = stub.ListTemplates(
        flow_pb2.ListTemplatesRequest(active_filter=flow_pb2.ACTIVE_FILTER_ACTIVE)
    )
    assert [t.name for t in active.templates] == ["draft"]


def test_an_import_may_move_a_keyword_between_templates_but_not_duplicate_it(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(template=definition("main", keywords=("hi",)))
    )

    moved = stub.ImportTemplates(
        flow_pb2.ImportTemplatesRequest(
            templates=[definition("main", keywords=("menu",)), definition("new", keywords=("hi",))]
        )
    )
    with pytest.raises(grpc.RpcError) as duplicated:
        stub.ImportTemplates(
            flow_pb2.ImportTemplatesRequest(templates=[definition("third", keywords=("menu",))])
        )

    assert [t.action for t in moved.templates] == [
        flow_pb2.IMPORT_ACTION_UPDATED,
        flow_pb2.IMPORT_ACTION_CREATED,
    ]
    assert conflict(duplicated.value) == [
        (
            "templates[0].trigger_keywords[0]",
            "'menu' is already a trigger keyword of the active template 'main'",
        )
    ]


def test_a_template_with_hundreds_of_problems_is_answered_the_same_every_time(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    # Trailers over gRPC's 8 KiB are refused at random (test_status.py sizes them exactly).
    menu = copy.deepcopy(MENU)
    for index in range(300):
        menu["steps"][f"orphan_{index}"] = {"prompt": "é" * 5000, "end_conversation": True}
    request = flow_pb2.ValidateTemplateRequest(template=definition(menu=menu))

    codes = []
    for _ in range(10):
        with pytest.raises(grpc.RpcError) as caught:
            stub.ValidateTemplate(request)
        codes.append(caught.value.code())

    assert codes == [grpc.StatusCode.INVALID_ARGUMENT] * 10
    assert (caught.value.details() or "").endswith("more problems not shown here")
