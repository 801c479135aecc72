"""Every grpcurl example in the README, taken from the README itself, run in order through the
real grpcurl binary against `python -m flowsvc` with a token: the README cannot drift from what
works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import flowsvc_process

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
VENV_BIN = str(Path(sys.executable).parent)
TOKEN = "readme-token"
README_ADDRESS = "127.0.0.1:50051"
README_REFERENCE = "K7M4Q2"  # the reference the README's GetResult example asks for


def shell_lines(markdown: str) -> list[str]:
    """The logical lines (continuations joined) of every ```sh block."""
    lines: list[str] = []
    for block in re.findall(r"^```sh\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL):
        lines.extend(line.strip() for line in block.replace("\\\n", " ").splitlines())
    return [line for line in lines if line]


def is_example(line: str) -> bool:
    return "grpcurl " in line and not line.startswith(("#", "export ", "alias "))


SETUP = [line for line in shell_lines(README) if line.startswith(("export ", "alias "))]
EXAMPLES = [line for line in shell_lines(README) if is_example(line)]

TEMPLATES = {
    "my_template.json": {
        "name": "my_template",
        "trigger_keywords": ["opening hours"],
        "is_active": True,
        "menu_structure": {
            "type": "button",
            "body": {"text": "We are open 8:00-18:00. Anything else?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "menu", "title": "Menu"}}]},
            "steps": {"initial": {"next_steps": {"menu": "flow:main_menu"}}},
        },
    },
    "a.json": {
        "name": "tour_a",
        "trigger_keywords": ["tour"],
        "menu_structure": {
            "type": "button",
            "body": {"text": "Stop A of the tour."},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "next", "title": "To B"}}]},
            "steps": {"initial": {"next_steps": {"next": "flow:tour_b"}}},
        },
    },
    "b.json": {
        "name": "tour_b",
        "menu_structure": {
            "type": "button",
            "body": {"text": "Stop B of the tour."},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "back", "title": "To A"}}]},
            "steps": {"initial": {"next_steps": {"back": "flow:tour_a"}}},
        },
    },
}


def test_the_readme_has_the_examples_an_admin_needs() -> None:
    methods = {m for line in EXAMPLES for m in re.findall(r"FlowService/(\w+)", line)}
    assert {
        "CreateTemplate",
        "UpdateTemplate",
        "ImportTemplates",
        "StartConversation",
        "GetConversation",
        "ListConversations",
        "EndConversation",
        "GetResult",
        "ListResults",
        "PublishTemplate",
        "DiffTemplateVersions",
        "PreviewTemplate",
        "RunSandbox",
        "GetFlowStats",
    } <= methods
    assert any(line.startswith("alias grpcurl=") for line in SETUP)


@pytest.fixture
def address(seeded: str, tmp_path: Path) -> Iterator[str]:
    with flowsvc_process(seeded, tmp_path / "flowsvc.log", FLOWSVC_TOKEN=TOKEN) as process:
        yield process.address


def order_a_coffee(address: str) -> str:
    """The README's customer orders through `make chat`; the reference the bot quotes."""
    env = os.environ | {"FLOWSVC_TARGET": address, "FLOWSVC_TOKEN": TOKEN}
    chat = subprocess.run(
        [sys.executable, "-m", "menuflow.chat", "--live", "--business", "100000000000001"]
        + ["--phone", "15551230001"],
        input="hi\n1\n1\n2\n1\n1\n/quit\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"order number is (\w+)", chat.stdout)
    assert found, chat.stdout + chat.stderr
    return found[1]


def run(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """`script` in bash, in a folder that has the project's .venv, as the README's reader has."""
    if not (folder / ".venv").exists():
        (folder / ".venv").symlink_to(Path(sys.executable).parents[1])
    path = folder / "example.sh"
    path.write_text(script)
    env = os.environ | {"PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    return subprocess.run(
        ["bash", str(path)], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )


def test_every_readme_grpcurl_example_runs(address: str, tmp_path: Path) -> None:
    for name, template in TEMPLATES.items():
        (tmp_path / name).write_text(json.dumps(template))
    (tmp_path / "tests" / "data").mkdir(parents=True)  # the README's examples run from the clone
    for name in ("pay_order.json",):
        (tmp_path / "tests" / "data" / name).write_text(
            (ROOT / "tests" / "data" / name).read_text()
        )
    reference = order_a_coffee(address)
    setup = [
        re.sub(r"^export FLOWSVC_TOKEN=\S+", f"export FLOWSVC_TOKEN={TOKEN}", line)
        for line in SETUP
    ]
    failures = []
    for example in EXAMPLES:
        command = example.replace(README_ADDRESS, address).replace(README_REFERENCE, reference)
        script = "\n".join(["shopt -s expand_aliases", *setup, command]).replace(
            README_ADDRESS, address
        )
        result = run(script + "\n", tmp_path)
        if result.returncode != 0:
            failures.append(f"{example}\n  -> {result.returncode}: {result.stderr.strip()}")
    assert not failures, "\n".join(failures)


def test_the_token_is_needed_and_the_alias_sends_it(address: str, tmp_path: Path) -> None:
    bare = run(f"grpcurl -plaintext {address} list\n", tmp_path)
    assert bare.returncode != 0 and "Unauthenticated" in bare.stderr


@pytest.mark.parametrize("mask", ['"is_active"', '"isActive"'])
def test_a_field_mask_as_a_string_is_refused_by_this_grpcurl(
    address: str, tmp_path: Path, mask: str
) -> None:
    # Why the README writes {"paths": [...]}: grpcurl 1.8.6 reads a FieldMask as a plain message
    # and refuses proto3 JSON's string form before any request is sent.
    template = '{"name": "support", "is_active": false}'
    request = f'{{"template": {template}, "update_mask": {mask}}}'
    result = run(
        f"grpcurl -plaintext -H 'authorization: Bearer {TOKEN}' -d '{request}' {address} "
        "menuflow.v1.FlowService/UpdateTemplate\n",
        tmp_path,
    )
    assert result.returncode != 0
    assert "expecting start of JSON object" in result.stderr
