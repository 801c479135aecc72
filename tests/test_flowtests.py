"""`menuflow test`: scripted conversation tests run in the sandbox of a real flowsvc, through the
installed entry point: the shipped templates' own tests pass, a failure is a readable diff and
exit 1, a broken script is a clear error, and a failing test blocks `templates publish`."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.database import row_counts
from tests.test_cli import DEFAULTS, menuflow

SHIPPED_TESTS = DEFAULTS / "tests"


def write(folder: Path, name: str, script: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(script, ensure_ascii=False))
    return path


ORDER_TEA = {
    "template": "new_order",
    "tests": [
        {
            "name": "one tea",
            "turns": [
                {"start": True},
                {"tap": "Tea", "expect": {"step": "quantity"}},
                {"send": "1", "expect": {"text": "Pickup or delivery?"}},
                {"tap": "pickup", "expect": {"text": "1 x Tea = $2.50"}},
            ],
        }
    ],
}


@pytest.mark.usefixtures("seeded")
def test_the_shipped_templates_pass_their_scripted_tests_and_write_nothing(
    flowsvc_target: str, database_url: str, tmp_path: Path
) -> None:
    before = row_counts(database_url)
    report = tmp_path / "junit.xml"

    result = menuflow(flowsvc_target, "test", str(SHIPPED_TESTS), "--junit", str(report))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    assert result.stdout.strip().endswith("20 passed, 0 failed, 0 errors")
    suites = ElementTree.parse(report).getroot().findall("testsuite")
    assert sum(int(s.get("tests", "0")) for s in suites) == 20
    assert all(s.get("failures") == "0" for s in suites)
    assert row_counts(database_url) == before


@pytest.mark.usefixtures("seeded")
def test_a_failing_expectation_is_a_readable_diff_and_exit_1(
    flowsvc_target: str, tmp_path: Path
) -> None:
    script = json.loads(json.dumps(ORDER_TEA))
    script["tests"][0]["turns"][3]["expect"] = {
        "text": "1 x Tea = $3.00",
        "context": {"quantity": 2},
    }
    write(tmp_path, "tea.test.json", script)
    report = tmp_path / "junit.xml"

    result = menuflow(flowsvc_target, "test", str(tmp_path), "--junit", str(report))

    assert result.returncode == 1
    out = result.stdout
    assert "FAIL" in out and "tea.test.json › one tea" in out
    assert "turn 4 (tap 'pickup'): expected a reply containing '1 x Tea = $3.00'" in out
    assert "1 x Tea = $2.50" in out  # what the bot said instead
    assert "turn 4 (tap 'pickup'): expected context.quantity = 2\n    got 1" in out
    assert "customer: turn 2 (tap 'Tea')" in out  # the conversation so far
    assert out.strip().endswith("0 passed, 1 failed, 0 errors")
    failure = ElementTree.parse(report).getroot().find("testsuite/testcase/failure")
    assert failure is not None and "1 x Tea = $3.00" in failure.get("message", "")


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("turn", "said"),
    [
        ({"tap": "Espresso"}, "no button or row 'Espresso' is offered (offered: 'Coffee', 'Tea'"),
        (
            {"send": "2", "expect": {"step": "checkout"}},
            "template 'new_order' has no step 'checkout' (it has address, address_failed, "
            "cancelled, check_address, complete, confirmation, delivery_confirmation, "
            "fulfilment, initial, quantity)",
        ),
        ({"send": "2", "expect": {"colour": "red"}}, "expect: unknown keys ['colour']"),
        (
            {"call_result": {"status": 200, "json": {"zone": "B"}}},
            "call_result: the conversation waits for no call (step 'initial')",
        ),
        ({"call_result": {"zone": "B"}}, "call_result: unknown keys ['zone']"),
    ],
    ids=[
        "missing-button",
        "missing-step",
        "unknown-expectation",
        "call-result-with-no-call",
        "bad-call-result",
    ],
)
def test_a_script_naming_what_is_not_there_is_a_clear_error(
    flowsvc_target: str, database_url: str, tmp_path: Path, turn: dict[str, Any], said: str
) -> None:
    script = {"template": "new_order", "tests": [{"name": "bad", "turns": [{"start": True}, turn]}]}
    write(tmp_path, "bad.test.json", script)
    before = row_counts(database_url)

    result = menuflow(flowsvc_target, "test", str(tmp_path))

    assert result.returncode == 1
    assert said in result.stdout + result.stderr
    assert row_counts(database_url) == before


@pytest.mark.usefixtures("seeded")
def test_template_files_run_unsaved_with_files(flowsvc_target: str, tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULTS, folder)
    menu = json.loads((folder / "new_order.json").read_text())
    menu["menu_structure"]["action"]["sections"][0]["rows"][1]["set"]["price"] = "3.00"
    (folder / "new_order.json").write_text(json.dumps(menu))
    script = json.loads(json.dumps(ORDER_TEA))
    script["tests"][0]["turns"][3]["expect"]["text"] = "1 x Tea = $3.00"
    write(folder / "tests", "tea.test.json", script)

    stored = menuflow(flowsvc_target, "test", str(folder / "tests" / "tea.test.json"))
    unsaved = menuflow(
        flowsvc_target, "test", str(folder / "tests" / "tea.test.json"), "--files", str(folder)
    )

    assert stored.returncode == 1 and "1 x Tea = $2.50" in stored.stdout
    assert unsaved.returncode == 0, unsaved.stdout + unsaved.stderr


def test_a_failing_scripted_test_blocks_publish_unless_forced(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULTS, folder)
    assert menuflow(flowsvc_target, "templates", "push", str(folder)).returncode == 0
    menu = json.loads((folder / "new_order.json").read_text())
    menu["menu_structure"]["action"]["sections"][0]["rows"][1]["set"]["price"] = "3.00"
    (folder / "new_order.json").write_text(json.dumps(menu))
    assert menuflow(flowsvc_target, "templates", "push", "--draft", str(folder)).returncode == 0
    write(tmp_path / "tests", "tea.test.json", ORDER_TEA)  # expects the live price, $2.50

    blocked = menuflow(
        flowsvc_target, "templates", "publish", "new_order", "--tests", str(tmp_path / "tests")
    )
    live = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="new_order")).template.live_version
    forced = menuflow(
        flowsvc_target,
        "templates",
        "publish",
        "new_order",
        "--tests",
        str(tmp_path / "tests"),
        "--force",
    )

    assert blocked.returncode == 1
    assert "expected a reply containing '1 x Tea = $2.50'" in blocked.stdout
    assert "new_order: scripted tests failed: version 2 not published" in blocked.stderr
    assert live == 1
    assert forced.returncode == 0, forced.stderr
    assert "new_order: version 2 is live (was 1)" in forced.stdout


def test_offline_the_shipped_tests_run_against_the_files_without_flowsvc() -> None:
    result = menuflow(
        "127.0.0.1:9", "test", str(SHIPPED_TESTS), "--offline", "--files", str(DEFAULTS)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith("20 passed, 0 failed, 0 errors")


def test_offline_template_files_with_problems_are_named_and_nothing_runs(tmp_path: Path) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(DEFAULTS, folder)
    (folder / "support.json").unlink()  # main_menu targets it

    result = menuflow(
        "127.0.0.1:9", "test", str(folder / "tests"), "--offline", "--files", str(folder)
    )

    assert result.returncode == 1
    assert "the template files cannot run" in result.stderr
    assert "flow:support" in result.stderr
    assert "PASS" not in result.stdout


def test_the_readme_call_result_example_runs_and_passes(tmp_path: Path) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    blocks = [
        textwrap.dedent(block)
        for block in re.findall(r"```json\n(.*?)```", readme, flags=re.DOTALL)
        if '"call_result"' in block
    ]
    assert len(blocks) == 1
    (tmp_path / "calls.test.json").write_text(blocks[0], encoding="utf-8")

    result = menuflow("127.0.0.1:9", "test", str(tmp_path), "--offline", "--files", str(DEFAULTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASS" in result.stdout and "delivery to zone B" in result.stdout
    assert result.stdout.strip().endswith("2 passed, 0 failed, 0 errors")
