"""The README's quick start: `make run` sets up and starts both services on SQLite and says when
they are ready; `make post-sample` posts the repository's sample webhook as Meta would (dev mode:
unsigned, the reply printed instead of sent); the same payload again gets no second reply."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

ROOT = Path(__file__).parents[1]


@dataclass
class Run:
    log: Path
    env: dict[str, str]

    def text(self) -> str:
        return self.log.read_text()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text().splitlines() if line.startswith("{")]

    def replies(self) -> list[dict[str, Any]]:
        """The messages the gateway printed instead of sending (read receipts left out)."""
        bodies = [
            json.loads(line["body"]) for line in self.lines() if line["event"] == "dev.outbound"
        ]
        return [body for body in bodies if body.get("status") != "read"]

    def make(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def wait_for(self, what: str, condition: Any, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"no {what}:\n{self.text()}"
            time.sleep(0.2)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    flowsvc, gateway = free_port(), free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("META_", "GATEWAY_", "FLOWSVC_"))
        },
        "DATABASE_URL": f"sqlite:///{tmp_path / 'quickstart.db'}",
        "FLOWSVC_LISTEN": f"127.0.0.1:{flowsvc}",
        "GATEWAY_PORT": str(gateway),
    }
    log = tmp_path / "run.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield Run(log, env)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def test_make_run_says_ready_and_post_sample_gets_the_main_menu_once(run: Run) -> None:
    run.wait_for("ready line", lambda: "ready: " in run.text())
    ready = next(line for line in run.text().splitlines() if line.startswith("ready: "))
    assert "make chat" in ready and "make post-sample" in ready
    # Every line a newcomer reads before "ready": no warning (dev mode on loopback is the plan).
    first = run.text().split("ready: ", 1)[0]
    assert [line for line in run.lines() if line.get("level") in ("warning", "error")] == []
    assert "Traceback" not in first
    assert next(line for line in run.lines() if line["event"] == "DEV_MODE")["level"] == "info"

    posted = run.make("post-sample")
    assert posted.returncode == 0, posted.stdout + posted.stderr
    assert "text.json" in posted.stdout and ": 200 " in posted.stdout
    run.wait_for("reply", lambda: run.replies())
    [menu] = run.replies()
    assert menu["interactive"]["type"] == "button"
    assert "Welcome" in menu["interactive"]["body"]["text"]

    again = run.make("post-sample")  # the same message id: a redelivery, answered 200, no reply
    assert again.returncode == 0, again.stdout + again.stderr
    fresh = run.make("post-sample", "FRESH=1")  # new ids: a new message, a new reply
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    run.wait_for("second reply", lambda: len(run.replies()) >= 2)
    time.sleep(1)
    assert len(run.replies()) == 2

    events = [line["event"] for line in run.lines()]
    assert "DEV_MODE" in events
    assert "pump.claim_error" not in events
