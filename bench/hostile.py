"""What hostile input costs a gateway, before and after a change, measured in one run.

`python -m bench.hostile --before DIR` runs the gateway from DIR (a checkout of the sources to
compare with, e.g. `git archive main | tar -x -C DIR`) and from this tree, each as its own process
against the same flowsvc (this tree's, on a fresh SQLite database), and prints for each:

- the gateway's resident memory before and at its peak while answering one signed 1 MB webhook of
  1,000 messages whose 1 MB contact name is Meta's for every one of them, and the time it took;
- the time to answer one signed webhook of one message from each of 1,000 customers, one of
  1,000 statuses (Meta's most in one POST), and one of
  4 MiB of statuses (as many as fit, about 100,000);
- how many of 300 idle and 20 dripping connections (one byte a second) are still open 10 s after
  they were opened (the default head deadline is 5 s);
- a seeded fuzz run (tests/test_hostile_webhooks.py's mutations): requests, 5xx, and valid
  messages lost from POSTs answered 200.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.procstat import peak_memory_mib, resident_mib
from bench.services import http_ok
from gateway.signature import sign
from tests.database import fresh_database, migrate, processed_ids
from tests.gateway_harness import APP_SECRET, message, webhook
from tests.payloads import load_webhook, webhook_names
from tests.servers import flowsvc_process, free_port
from tests.test_hostile_webhooks import _body, _mutate

HERE = Path(__file__).resolve().parent.parent


@contextmanager
def gateway(source: Path, flowsvc: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    env = {
        **os.environ,
        "META_APP_SECRET": APP_SECRET,
        "META_VERIFY_TOKEN": "verify",
        "META_ACCESS_TOKEN": "token",
        "FLOWSVC_TARGET": flowsvc,
        "GATEWAY_PORT": str(port),
        "GRAPH_API_URL": "http://127.0.0.1:9",
        "MARK_AS_READ": "false",
        "LOG_LEVEL": "ERROR",
        "FLOWSVC_TIMEOUT_SECONDS": "300",
        "PYTHONPATH": str(source),
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway"], cwd=source, env=env, stdout=output, stderr=output
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while not http_ok(f"{url}/healthz"):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"gateway did not start: {log.read_text()}")
                time.sleep(0.1)
            yield process, url
        finally:
            process.terminate()
            process.wait(30)


def post(client: httpx.Client, body: bytes) -> int:
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(APP_SECRET, body)}
    return client.post("/webhook", content=body, headers=headers).status_code


def one_name_for_a_thousand() -> bytes:
    document = webhook(*(message("16505551234", text="hi") for _ in range(1000)))
    value = document["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["profile"]["name"] = "N" * (1024 * 1024 - 120_000)
    return json.dumps(document).encode()


def many_customers(count: int) -> bytes:
    """One message from each of `count` customers: Meta's largest batch of ordinary messages."""
    return json.dumps(webhook(*(message(f"1666{i:07d}", text="hi") for i in range(count)))).encode()


def statuses(size: int = 0, count: int = 0) -> bytes:
    """A webhook of minimal statuses: `count` of them, or as many as fit in `size` bytes."""
    document = load_webhook("status_delivered")
    value = document["entry"][0]["changes"][0]["value"]
    one = {"id": "", "status": "delivered", "timestamp": "1700000000", "recipient_id": "1"}
    each = len(json.dumps(one)) + 16
    count = count or size // each
    value["statuses"] = [dict(one, id=f"wamid.S{i:07d}") for i in range(count)]
    body = json.dumps(document).encode()
    while size and len(body) > size:
        value["statuses"].pop()
        body = json.dumps(document).encode()
    return body


def held_connections(port: int) -> int:
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(320)]
    stop = threading.Event()

    def drip() -> None:
        for byte in b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa":
            if stop.wait(1.0):
                return
            for sock in sockets[300:]:
                try:
                    sock.send(bytes([byte]))
                except OSError:
                    pass

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    time.sleep(10.0)  # a measurement, not a synchronization: what is open at this moment
    stop.set()
    dripper.join()
    held = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            while sock.recv(65536):
                pass
            closed = True
        except BlockingIOError:
            closed = False
        except OSError:
            closed = True
        held += not closed
        sock.close()
    return held


def fuzz(client: httpx.Client, database_url: str, requests: int) -> dict[str, int]:
    rng = random.Random(21)
    names = webhook_names()
    server_errors, expected, sequence = 0, set(), iter(range(10**6))
    for _ in range(requests):
        document: Any = load_webhook(rng.choice(names))
        for _ in range(rng.randint(1, 3)):
            document = _mutate(rng, document)
        valid = message(f"1777{next(sequence):07d}", text="hi")
        if isinstance(document, dict) and isinstance(document.get("entry"), list):
            document["entry"].append(webhook(valid)["entry"][0])
        else:
            valid = {}
        try:
            status = post(client, _body(rng, document))
        except httpx.HTTPError:
            status = 599  # no answer at all
        server_errors += status >= 500
        if status == 200 and valid:
            expected.add(valid["id"])
    lost = expected - processed_ids(database_url)
    return {"requests": requests, "5xx": server_errors, "200": len(expected), "lost": len(lost)}


def measure(source: Path, folder: Path, requests: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with fresh_database(None, folder) as url:
        migrate(url)
        with (
            flowsvc_process(url, folder / "flowsvc.log") as flowsvc,
            gateway(source, flowsvc.address, folder / "gateway.log") as (process, base),
        ):
            with httpx.Client(base_url=base, timeout=600) as client:
                rss = resident_mib(process.pid)
                body = one_name_for_a_thousand()
                started = time.monotonic()
                status = post(client, body)
                result["1MB_1000_messages"] = {
                    "bytes": len(body),
                    "status": status,
                    "rss_before_mib": round(rss, 1),
                    "rss_peak_mib": round(peak_memory_mib(process.pid), 1),
                    "seconds": round(time.monotonic() - started, 2),
                }
                for name, body in (
                    ("1000_customers", many_customers(1000)),
                    ("1000_statuses", statuses(count=1000)),
                    ("4MiB_statuses", statuses(size=4 * 1024 * 1024)),
                ):
                    started = time.monotonic()
                    status = post(client, body)
                    result[name] = {
                        "items": body.count(b'"wamid.'),
                        "bytes": len(body),
                        "status": status,
                        "seconds": round(time.monotonic() - started, 2),
                    }
                result["connections_held_after_10s"] = held_connections(int(base.rsplit(":", 1)[1]))
                result["fuzz"] = fuzz(client, url, requests)
            result["gateway_alive"] = process.poll() is None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="sources to compare with")
    parser.add_argument("--requests", type=int, default=300, help="fuzzed webhooks each")
    args = parser.parse_args()
    report = {}
    for label, source in (("before", args.before.resolve()), ("after", HERE)):
        with tempfile.TemporaryDirectory() as folder:
            report[label] = measure(source, Path(folder), args.requests)
            print(label, json.dumps(report[label]), flush=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
