"""A small local stand-in for the business's `address_check` endpoint, which the shipped order
flow calls when a customer wants delivery: `make run` starts it when CALL_ENDPOINTS is not set
(dev mode), and the tests run it on loopback.

POST /check {"address": "..."} answers 200 {"zone": "A"|"B"|"C", "eta_minutes": 30} (the zone
from the address's first letter), or 404 {"error": "unknown address"} when the address mentions
"nowhere". Tests can make it misbehave (`behave`): answer an error status, answer slowly, answer
without the zone, and count what it was sent (`requests`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ENDPOINT_NAME = "address_check"


@dataclass
class Behaviour:
    """How the stand-in answers: `status` (0: as described above), after `delay` seconds,
    `without` dropping that field from a 200's body."""

    status: int = 0
    delay: float = 0.0
    without: str = ""


def answer(address: str) -> tuple[int, dict[str, Any]]:
    """What the stand-in answers for `address` when it behaves."""
    if "nowhere" in address.lower():
        return 404, {"error": "unknown address"}
    zone = "ABC"[(ord(address.strip()[:1] or "A") % 3)]
    return 200, {"zone": zone, "eta_minutes": 30}


class AddressCheck(ThreadingHTTPServer):
    """The stand-in on a loopback port (0: any free one); `serve()` runs it in a thread."""

    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.behaviour = Behaviour()
        self.requests: list[dict[str, Any]] = []  # each request's method, path, headers and body
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self) -> AddressCheck:
        threading.Thread(target=self.serve_forever, daemon=True, name="address-check").start()
        return self

    def behave(self, **changes: Any) -> None:
        self.behaviour = Behaviour(**changes)

    def endpoint_setting(self, *, idempotent: bool = True) -> str:
        """CALL_ENDPOINTS naming this stand-in as `address_check`."""
        return json.dumps([{"name": ENDPOINT_NAME, "url": self.url, "idempotent": idempotent}])


class _Handler(BaseHTTPRequestHandler):
    server: AddressCheck

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        with self.server.lock:
            self.server.requests.append(
                {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
            )
        behaviour = self.server.behaviour
        if behaviour.delay:
            time.sleep(behaviour.delay)
        address = body.get("address") if isinstance(body, dict) else None
        status, document = answer(address if isinstance(address, str) else "")
        if self.path.split("?")[0] != "/check":
            status, document = 404, {"error": "no such path"}
        if behaviour.status:
            status, document = behaviour.status, {"error": "the stand-in was told to fail"}
        elif behaviour.without:
            document.pop(behaviour.without, None)
        data = json.dumps(document).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller gave up (its timeout): nothing to answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # quiet: the gateway logs each call
