"""The README's quick start: `make run` sets up and starts both services on SQLite, and a message
to the gateway (dev mode: unsigned, printed instead of sent) gets the main menu back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.servers import free_port

ROOT = Path(__file__).parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "webhooks"


def test_make_run_starts_both_services_and_answers_hi(tmp_path: Path) -> None:
    flowsvc, gateway = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("META_", "GATEWAY_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'quickstart.db'}",
        "FLOWSVC_LISTEN": f"127.0.0.1:{flowsvc}",
        "FLOWSVC_TARGET": f"127.0.0.1:{flowsvc}",
        "GATEWAY_PORT": str(gateway),
    }
    log = (tmp_path / "run.log").open("w+")
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        payload = (CORPUS / "metadocs__webhooks_overview__text.json").read_bytes()
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, Path(log.name).read_text()
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{gateway}/webhook",
                    content=payload,
                    headers={"content-type": "application/json"},
                )
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.3)
        while "dev.outbound" not in Path(log.name).read_text():
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
        log.close()

    lines = [
        json.loads(line) for line in Path(log.name).read_text().splitlines() if "{" in line[:1]
    ]
    printed = [line for line in lines if line.get("event") == "dev.outbound"]
    body = json.loads(printed[0]["body"])
    assert body["interactive"]["type"] == "button"
    assert "Welcome" in body["interactive"]["body"]["text"]
    assert any(line.get("event") == "DEV_MODE" for line in lines)
