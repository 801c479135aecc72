"""`menuflow templates push --draft|publish|rollback|versions|changes|preview`, run as the
installed entry point against a real flowsvc."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.chat import Chat
from tests.test_cli import DEFAULTS, menuflow
from tests.test_templates import struct


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULTS, folder)
    return folder


def edit_support_body(folder: Path, text: str) -> None:
    path = folder / "support.json"
    data = json.loads(path.read_text())
    data["menu_structure"]["body"]["text"] = text
    path.write_text(json.dumps(data))


def test_a_pushed_draft_goes_live_on_publish_and_back_on_rollback(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub, folder: Path
) -> None:
    assert menuflow(flowsvc_target, "templates", "push", str(folder)).returncode == 0
    edit_support_body(folder, "How can we help you today?")

    pushed = menuflow(flowsvc_target, "templates", "push", "--draft", str(folder))
    versions = menuflow(flowsvc_target, "templates", "versions", "support")
    changes = menuflow(flowsvc_target, "templates", "changes", "support")
    pulled = menuflow(flowsvc_target, "templates", "pull", str(folder.parent / "live"), "support")
    chat = Chat(stub)
    chat.say("help")
    before = chat.texts

    published = menuflow(flowsvc_target, "templates", "publish", "support")
    Chat(stub, phone_number="16505550100").say("help")
    after = Chat(stub, phone_number="16505550101")
    after.say("help")
    rolled = menuflow(flowsvc_target, "templates", "rollback", "support")
    back = Chat(stub, phone_number="16505550102")
    back.say("help")

    assert pushed.returncode == 0, pushed.stderr
    assert "updated" in pushed.stdout
    assert versions.returncode == 0
    rows = [line.split("│") for line in versions.stdout.splitlines() if line.startswith("│")]
    assert [(r[1].strip(), r[2].strip()) for r in rows] == [("2", "draft"), ("1", "live")]
    assert changes.returncode == 0, changes.stderr
    assert "version 1 -> 2, 1 changes" in changes.stdout
    assert "message.body" in changes.stdout and "How can we help you today?" in changes.stdout
    assert "How can we help you today?" not in before[0]
    assert pulled.returncode == 0, pulled.stderr
    pulled_support = json.loads((folder.parent / "live" / "support.json").read_text())
    assert pulled_support["menu_structure"]["body"]["text"] == before[0]  # the live version
    assert published.stdout.strip() == "support: version 2 is live (was 1)"
    assert after.texts[0] == "How can we help you today?"
    assert rolled.stdout.strip() == "support: version 1 is live (was 2)"
    assert back.texts == before


def test_preview_prints_each_step_as_whatsapp_shows_it(flowsvc_target: str, folder: Path) -> None:
    menuflow(flowsvc_target, "templates", "push", str(folder))

    shown = menuflow(
        flowsvc_target,
        "templates",
        "preview",
        "new_order",
        "--context",
        '{"product_title": "Tea", "quantity": 3, "total": "7.50"}',
    )

    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "new_order version 1 live" in out
    assert "What would you like to order?" in out and "View Products" in out
    assert "Coffee — $3.50" in out
    assert "How many Tea would you like?" in out
    assert "3 x Tea = $7.50" in out
    assert "✅ Yes  -> complete" in out and "❌ No  -> cancelled" in out
    assert "typed integer into {quantity}  -> fulfilment" in out
    assert "Your order number is ABC234" in out
    assert "(the conversation ends here)" in out


def test_preview_of_a_version_that_does_not_exist_is_a_clear_error(
    flowsvc_target: str, folder: Path
) -> None:
    menuflow(flowsvc_target, "templates", "push", str(folder))

    shown = menuflow(flowsvc_target, "templates", "preview", "new_order", "--version", "7")

    assert shown.returncode != 0
    assert "NOT_FOUND" in shown.stderr and "has no version 7" in shown.stderr


def test_the_preview_rpc_says_where_each_choice_leads(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub, folder: Path
) -> None:
    menuflow(flowsvc_target, "templates", "push", str(folder))

    preview = stub.PreviewTemplate(flow_pb2.PreviewTemplateRequest(name="main_menu"))

    initial = preview.steps[0]
    assert initial.step == "initial"
    assert [(c.id, c.target) for c in initial.choices][:1] == [("new_order", "flow:new_order")]
    assert initial.messages[0]["type"] == "interactive"


def test_a_draft_previews_with_unfilled_placeholders_named(
    stub: flow_pb2_grpc.FlowServiceStub,
) -> None:
    menu = {
        "type": "text",
        "body": {"text": "Hello {contact_name}, how many?"},
        "steps": {
            "initial": {
                "context_key": "count",
                "validation": "number",
                "set": {"item": "pears"},
                "next_step": "done",
            },
            "done": {"prompt": "{count} {item}: noted ({order_id}).", "end_conversation": True},
        },
    }
    stub.CreateTemplate(
        flow_pb2.CreateTemplateRequest(
            template=flow_pb2.TemplateDefinition(name="count_them", menu_structure=struct(menu)),
            draft=True,
        )
    )
    context = struct({"item": "pears"})

    shown = stub.PreviewTemplate(
        flow_pb2.PreviewTemplateRequest(name="count_them", context=context)
    )

    assert shown.template.draft and shown.template.version == 1
    initial, done = shown.steps
    assert initial.messages[0]["text"]["body"] == "Hello Customer, how many?"
    assert done.messages[0]["text"]["body"].endswith("pears: noted (ABC234).")
    assert (initial.input, initial.context_key, initial.next_step) == ("number", "count", "done")
    assert list(done.missing_placeholders) == ["count"]
    assert done.end_conversation


def test_preview_prints_a_photo_header_readably(flowsvc_target: str, folder: Path) -> None:
    menuflow(flowsvc_target, "templates", "push", str(folder))

    shown = menuflow(flowsvc_target, "templates", "preview", "main_menu")

    assert shown.returncode == 0, shown.stderr
    assert "🖼 image] <https://upload.wikimedia.org/wikipedia/commons/4/45/" in shown.stdout


def test_preview_bubbles_show_media_cta_location_and_flow_messages() -> None:
    from rich.console import Console

    from flowsvc.engine.preview import preview
    from menuflow.cli.authoring import bubble
    from tests.test_authoring_engine import shapes, version

    console = Console(width=200, record=True)
    for step in preview(version(1, shapes()), {"note": "gate 2", "dish": "Pasta"}):
        for body in step.messages:
            console.print(bubble(body))
    out = console.export_text()

    assert "[🖼 image: Our Pasta today] <https://cdn.example.com/pasta.jpg>" in out
    assert "[📄 document invoice.pdf: Invoice for Customer] <media id 1013859600285441>" in out
    assert "[ 📍 Send location ]" in out
    assert "[ 🔗 Pay now ] <https://pay.example.com/checkout/gate%202?who=Customer>" in out
    assert "[ Choose a time ] (WhatsApp Flow 1234567890, screen BOOKING)" in out
