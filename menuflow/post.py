"""`make post-sample`: post a webhook file to a running gateway, as Meta would.

Signed with META_APP_SECRET when it is set (a gateway with Meta credentials refuses unsigned
webhooks); unsigned otherwise, which a gateway in dev mode accepts. The gateway answers 200 once
flowsvc has recorded the message; the reply appears in the gateway's log (dev mode: a
`dev.outbound` line), not here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.signature import sign

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "webhooks" / "text.json"


def freshen(document: Any) -> Any:
    """The same webhook with new message ids and the current time: a new message, not a
    redelivery (the gateway and flowsvc answer a message id once)."""
    now = time.time_ns()
    for entry in document.get("entry", []):
        for change in entry.get("changes", []):
            for number, message in enumerate(change.get("value", {}).get("messages", [])):
                message["id"] = f"{message.get('id', 'wamid.')}.{now}.{number}"
                message["timestamp"] = str(now // 1_000_000_000)
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE, help="a webhook JSON file")
    parser.add_argument(
        "--url",
        default=f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT') or 8080}/webhook",
        help="the gateway's webhook URL",
    )
    parser.add_argument("--fresh", action="store_true", help="new message ids: a new message")
    args = parser.parse_args(argv)
    body = args.file.read_bytes()
    if args.fresh:
        body = json.dumps(freshen(json.loads(body)), ensure_ascii=False).encode()
    headers = {"Content-Type": "application/json"}
    secret = os.environ.get("META_APP_SECRET")
    if secret:
        headers["X-Hub-Signature-256"] = sign(secret, body)
    try:
        answer = httpx.post(args.url, content=body, headers=headers, timeout=30)
    except httpx.TransportError as error:
        print(f"post-sample: no gateway at {args.url} ({error}); is `make run` running?")
        return 1
    print(f"post-sample: {args.file.name} -> {args.url}: {answer.status_code} {answer.text}")
    if answer.status_code == 200:
        print("post-sample: the reply shows in the gateway's log (dev mode: a dev.outbound line)")
    return 0 if answer.status_code == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
