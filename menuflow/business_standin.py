"""A small local stand-in for the business's own HTTP APIs that the shipped templates call: the
order flow's `address_check` (when a customer wants delivery) and the booking flow's `slots` (the
free tables). `make run` starts it when CALL_ENDPOINTS is not set (dev mode), and the tests and
`make chaos` run it on loopback. One server answers both endpoints (they differ by path).

POST /check {"address": "..."} answers 200 {"zone": "A"|"B"|"C", "eta_minutes": 30} (the zone
from the address's first letter), or 404 {"error": "unknown address"} when the address mentions
"nowhere". GET /slots?party=N answers 200 {"party": N, "slots": [{"label": "12:00", "time":
"12:00"}, ...]}: 14 times (lunch 12:00-15:00 and dinner 19:00-22:00, every half hour), enough
that a list of them is paged. Tests can make it misbehave (`behave`): answer an error status,
answer slowly, answer without a field, offer another number of slots, and count what it was
sent (`requests`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ENDPOINT_NAME = "address_check"
SLOTS_ENDPOINT = "slots"
SLOT_TIMES = tuple(
    f"{hour:02d}:{minute:02d}"
    for start in (12, 19)
    for hour, minute in ((start + half // 2, 30 * (half % 2)) for half in range(7))
)


@dataclass
class Behaviour:
    """How the stand-in answers: `status` (0: as described above), after `delay` seconds,
    `without` dropping that field from a 200's body, offering the first `slots` free times."""

    status: int = 0
    delay: float = 0.0
    without: str = ""
    slots: int = len(SLOT_TIMES)


def answer(address: str) -> tuple[int, dict[str, Any]]:
    """What the stand-in answers for `address` when it behaves."""
    if "nowhere" in address.lower():
        return 404, {"error": "unknown address"}
    zone = "ABC"[(ord(address.strip()[:1] or "A") % 3)]
    return 200, {"zone": zone, "eta_minutes": 30}


def free_slots(party: str, count: int = len(SLOT_TIMES)) -> tuple[int, dict[str, Any]]:
    """What the stand-in answers to GET /slots?party=`party`: the first `count` free times."""
    if not party.isdigit() or not 1 <= int(party) <= 50:
        return 400, {"error": "party must be a number from 1 to 50"}
    slots = [{"label": time, "time": time} for time in SLOT_TIMES[:count]]
    return 200, {"party": int(party), "slots": slots}


class BusinessStandin(ThreadingHTTPServer):
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

    def serve(self) -> BusinessStandin:
        threading.Thread(target=self.serve_forever, daemon=True, name="business-standin").start()
        return self

    def behave(self, **changes: Any) -> None:
        self.behaviour = Behaviour(**changes)

    def endpoint_setting(self, *, idempotent: bool = True) -> str:
        """CALL_ENDPOINTS naming this stand-in as `address_check` and as `slots`."""
        return json.dumps(
            [
                {"name": name, "url": self.url, "idempotent": idempotent}
                for name in (ENDPOINT_NAME, SLOTS_ENDPOINT)
            ]
        )


class _Handler(BaseHTTPRequestHandler):
    server: BusinessStandin

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self._record("POST", body)
        address = body.get("address") if isinstance(body, dict) else None
        path = urlsplit(self.path).path
        if path == "/check":
            self._answer(*answer(address if isinstance(address, str) else ""))
        else:
            self._answer(404, {"error": "no such path"})

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._record("GET", None)
        url = urlsplit(self.path)
        if url.path == "/slots":
            party = parse_qs(url.query).get("party", [""])[0]
            self._answer(*free_slots(party, self.server.behaviour.slots))
        else:
            self._answer(404, {"error": "no such path"})

    def _record(self, method: str, body: Any) -> None:
        with self.server.lock:
            self.server.requests.append(
                {"method": method, "path": self.path, "headers": dict(self.headers), "body": body}
            )

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        """Send `document` as the stand-in behaves now (late, failing or lacking a field)."""
        behaviour = self.server.behaviour
        if behaviour.delay:
            time.sleep(behaviour.delay)
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
