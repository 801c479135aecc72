"""The `menuflow` command, run as the installed entry point against a real flowsvc: template
files pushed, pulled, validated offline and diffed; conversations started, steered and ended;
messages sent; failures shown with every problem and a non-zero exit."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from menuflow.v1 import flow_pb2_grpc
from tests.chat import BUSINESS, Chat
from tests.database import row_counts
from tests.steering import PAY_ORDER

MENUFLOW = shutil.which("menuflow", path=str(Path(sys.executable).parent)) or "menuflow"
DEFAULTS = Path(__file__).parents[1] / "flowsvc" / "default_templates"


def menuflow(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MENUFLOW_TARGET": target,
        "MENUFLOW_BUSINESS": BUSINESS,
        "COLUMNS": "200",
    }
    return subprocess.run([MENUFLOW, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The shipped templates plus the payment example, as template files."""
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULTS, folder)
    shutil.copy(PAY_ORDER, folder)
    return folder


def test_validate_offline_shows_the_problems_per_file(folder: Path) -> None:
    broken = json.loads((folder / "support.json").read_text())
    broken["trigger_keywords"].append("")
    (folder / "support.json").write_text(json.dumps(broken))

    result = menuflow("127.0.0.1:9", "templates", "validate", str(folder))

    assert result.returncode == 1
    assert f"{folder / 'main_menu.json'}: valid" in result.stdout
    assert f"{folder / 'support.json'}: 1 problem" in result.stderr
    assert "trigger_keywords[" in result.stderr and "is empty" in result.stderr


def test_push_pull_and_diff(flowsvc_target: str, folder: Path, tmp_path: Path) -> None:
    pushed = menuflow(flowsvc_target, "templates", "push", str(folder))
    again = menuflow(flowsvc_target, "--json", "templates", "push", str(folder))
    pulled = menuflow(flowsvc_target, "templates", "pull", str(tmp_path / "live"))
    same = menuflow(flowsvc_target, "templates", "diff", str(folder / "pay_order.json"))
    changed = json.loads(PAY_ORDER.read_text())
    changed["trigger_keywords"] = ["pay my order"]
    (folder / "pay_order.json").write_text(json.dumps(changed))
    differs = menuflow(flowsvc_target, "templates", "diff", str(folder / "pay_order.json"))

    assert pushed.returncode == 0, pushed.stderr
    assert "pay_order" in pushed.stdout and "created" in pushed.stdout
    assert {t["action"] for t in json.loads(again.stdout)} == {"IMPORT_ACTION_UNCHANGED"}
    assert pulled.returncode == 0, pulled.stderr
    assert sorted(p.name for p in (tmp_path / "live").iterdir()) == sorted(
        p.name for p in folder.glob("*.json")
    )
    assert json.loads((tmp_path / "live" / "pay_order.json").read_text()) == json.loads(
        PAY_ORDER.read_text()
    )
    assert same.returncode == 0 and "the same as the live version" in same.stdout
    assert differs.returncode == 1
    assert '+    "pay my order"' in differs.stdout


def test_push_refuses_the_whole_set_when_a_file_is_invalid(
    flowsvc_target: str, folder: Path, database_url: str
) -> None:
    broken = json.loads((folder / "account.json").read_text())
    broken["menu_structure"]["action"]["buttons"][0]["reply"]["title"] = "x" * 30
    (folder / "account.json").write_text(json.dumps(broken))
    before = row_counts(database_url)

    result = menuflow(flowsvc_target, "templates", "push", str(folder))

    assert result.returncode == 1
    assert f"{folder / 'account.json'}: 1 problem" in result.stderr
    assert "menu_structure.action.buttons[0].reply.title" in result.stderr
    assert row_counts(database_url) == before


def test_conversations_sends_and_results(
    flowsvc_target: str, folder: Path, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    menuflow(flowsvc_target, "templates", "push", str(folder))
    phone = "15550009999"
    Chat(stub, phone).say("hi")

    started = menuflow(
        flowsvc_target,
        "conversations", "start", phone, "pay_order", "--set", "item=Cake", "--set", "total=9",
    )  # fmt: skip
    listed = menuflow(flowsvc_target, "conversations", "list", "--flow", "pay_order")
    shown = menuflow(flowsvc_target, "--json", "conversations", "show", phone)
    revision = json.loads(shown.stdout)["revision"]
    sent = menuflow(flowsvc_target, "send", phone, "--text", "Your cake is in the oven")
    stale = menuflow(
        flowsvc_target, "conversations", "update", phone, "--step", "paid", "--expect-revision", "1"
    )
    paid = menuflow(
        flowsvc_target,
        "conversations", "update", phone, "--set", "paid=true", "--step", "paid",
        "--expect-revision", str(revision), "--send",
    )  # fmt: skip
    results = menuflow(flowsvc_target, "--json", "results", "list", "--phone", phone)

    assert started.returncode == 0, started.stderr
    assert "queued #" in started.stdout and "initial" in started.stdout
    assert phone in listed.stdout and "pay_order" in listed.stdout
    assert sent.returncode == 0 and "text" in sent.stdout
    assert stale.returncode == 1
    assert stale.stderr.startswith("ABORTED: the conversation is at revision")
    assert paid.returncode == 0, paid.stderr
    assert "completed: result" in paid.stdout
    [result] = json.loads(results.stdout)
    assert result["context"] == {"item": "Cake", "total": 9, "paid": True}


def test_a_send_outside_the_window_says_why(flowsvc_target: str) -> None:
    result = menuflow(flowsvc_target, "send", "15550008888", "--text", "hello")
    assert result.returncode == 1
    assert result.stderr.startswith("FAILED_PRECONDITION: outside Meta's 24-hour customer")
    templated = menuflow(
        flowsvc_target,
        "send", "15550008888", "--text", "hello", "--template", "order_ready",
        "--body-param", "K7M4Q2", "--quick-reply", "0=ready",
    )  # fmt: skip
    assert templated.returncode == 0, templated.stderr
    assert "template" in templated.stdout


def test_push_shows_warnings_and_still_pushes(flowsvc_target: str, folder: Path) -> None:
    support = json.loads((folder / "support.json").read_text())
    support["menu_structure"]["steps"]["initial"]["prompt"] = "How can we help?"
    (folder / "support.json").write_text(json.dumps(support))

    result = menuflow(flowsvc_target, "templates", "push", str(folder))
    offline = menuflow("127.0.0.1:9", "templates", "validate", str(folder))

    assert result.returncode == 0, result.stderr
    for shown in (result.stderr, offline.stderr):
        assert f"{folder / 'support.json'}: 1 warning" in shown
        assert "menu_structure.steps.initial.prompt: is never sent" in shown
    assert offline.returncode == 0 and f"{folder / 'support.json'}: valid" in offline.stdout


@pytest.mark.usefixtures("seeded")
def test_events_list_and_tail(flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub) -> None:
    Chat(stub).say("hi")
    listed = menuflow(flowsvc_target, "--json", "events", "list", "--type", "step_entered")
    assert listed.returncode == 0, listed.stderr
    entered = json.loads(listed.stdout)
    assert [e["type"] for e in entered] == ["EVENT_TYPE_STEP_ENTERED"]

    env = {**os.environ, "MENUFLOW_TARGET": flowsvc_target, "MENUFLOW_BUSINESS": BUSINESS}
    tail = subprocess.Popen(
        [MENUFLOW, "events", "tail", "--from", "0", "--type", "step_entered"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        first = tail.stdout.readline()
        Chat(stub, phone_number="16505550077").say("hi")
        second = tail.stdout.readline()
    finally:
        tail.kill()
        tail.wait()
        if tail.stdout is not None:
            tail.stdout.close()
    assert first.split()[0] == str(entered[0]["id"]) and "step_entered" in first
    assert "16505550077" in second and "main_menu@1" in second


@pytest.mark.usefixtures("seeded")
def test_a_terminal_agent_console_hands_off_lists_the_queue_answers_and_resumes(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    chat = Chat(stub)
    chat.say("hi")

    handed = menuflow(
        flowsvc_target, "handoff", chat.phone_number, "--queue", "billing", "--reason", "refund"
    )
    chat.say("I want my money back")
    waiting = menuflow(flowsvc_target, "--json", "queue", "--queue", "billing")
    tail = menuflow(flowsvc_target, "events", "list", "--type", "customer_message")
    answered = menuflow(
        flowsvc_target, "send", chat.phone_number, "--text", "On it", "--agent", "Ana"
    )
    resumed = menuflow(flowsvc_target, "resume", chat.phone_number, "--text", "Back to the menu")
    again = menuflow(flowsvc_target, "resume", chat.phone_number)

    assert handed.returncode == 0, handed.stderr
    assert "handed off to queue billing" in handed.stdout
    assert [c["handoff"]["reason"] for c in json.loads(waiting.stdout)] == ["refund"]
    assert "I want my money back" in tail.stdout
    assert answered.returncode == 0, answered.stderr
    assert resumed.returncode == 0, resumed.stderr
    assert "main_menu" in resumed.stdout
    assert again.returncode == 1
    assert "FAILED_PRECONDITION" in again.stderr and "not handed off" in again.stderr
