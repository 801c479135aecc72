"""The load driver of `make bench`: plays Meta, posting signed webhooks to a gateway.

Test tooling, not product code. It speaks HTTP/1.1 with keep-alive over plain asyncio streams
(on uvloop) instead of httpx, because it shares the machine's two cores with what it measures:
httpx costs ~1.7 ms of CPU per request at 50 in flight, which alone would eat most of a core at
1,000 requests/s. Webhook bodies are the shapes of the project's fixtures (tests/fixtures/webhooks:
text, button_reply, list_reply) with unique wamids and current timestamps, signed with
X-Hub-Signature-256.

Two modes, run as `python -m bench.driver MODE ...`, writing JSON results to --out:
  flow: customers walk the order flow at a fixed offered rate (open loop across customers). Each
        customer's next webhook is due `customers / rate` seconds after its previous one, and is
        posted at that time or, if the previous one is still unanswered, right after its answer
        (Meta does not deliver one customer's messages in parallel and out of order here: the walk
        must stay a walk). A non-200 answer is retried after 0.5 s, as Meta would retry it.
  max:  a closed loop: every connection posts the next webhook as soon as the last was answered,
        for the bare ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import resource
import time
from collections import deque
from pathlib import Path
from typing import Any

import uvloop

from menuflow.runtime import tune_garbage_collector
from tests.payloads import WEBHOOKS

BUSINESS = "106540352242922"
# One walk down the shipped order flow: the fixture whose shape it has, and what is in it.
ORDER_WALK: list[tuple[str, dict[str, str]]] = [
    ("text", {"body": "hi"}),
    ("button_reply", {"id": "new_order", "title": "🛒 New Order"}),
    ("list_reply", {"id": "coffee", "title": "Coffee", "description": "$3.50"}),
    ("text", {"body": "2"}),
    ("button_reply", {"id": "pickup", "title": "🏪 Pickup"}),
    ("button_reply", {"id": "yes", "title": "✅ Yes"}),
]
_SHAPES = {
    "text": "text.json",
    "button_reply": "interactive_button_reply.json",
    "list_reply": "interactive_list_reply.json",
}


def customer_phone(number: int) -> str:
    return str(15550100000 + number)


class Payloads:
    """Signed webhook bodies in the fixtures' shapes, one unique wamid each."""

    def __init__(self, secret: str, run: str) -> None:
        self._secret = secret.encode()
        self._run = run
        self._count = 0
        # Kept as text: parsing a fresh copy is several times cheaper than copy.deepcopy.
        self._shapes = {kind: (WEBHOOKS / name).read_text() for kind, name in _SHAPES.items()}

    def build(self, customer: int, step: int) -> tuple[str, bytes, str]:
        """(wamid, body, signature header value) for `customer`'s walk step `step`."""
        kind, content = ORDER_WALK[step % len(ORDER_WALK)]
        document = json.loads(self._shapes[kind])
        value = document["entry"][0]["changes"][0]["value"]
        phone = customer_phone(customer)
        value["metadata"]["phone_number_id"] = BUSINESS
        value["contacts"][0]["wa_id"] = phone
        value["contacts"][0]["profile"]["name"] = f"Customer {customer}"
        message = value["messages"][0]
        self._count += 1
        wamid = f"wamid.BENCH{self._run}{self._count:09d}"
        message["from"] = phone
        message["id"] = wamid
        message["timestamp"] = str(int(time.time()))
        if kind == "text":
            message["text"] = dict(content)
        else:
            message["interactive"] = {"type": kind, kind: dict(content)}
        body = json.dumps(document, ensure_ascii=False).encode()
        digest = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        return wamid, body, "sha256=" + digest


class Connection:
    """One keep-alive HTTP/1.1 connection: POST, read the status and the body."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, signature: str) -> int:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self._host}:{self._port}\r\n"
            f"Content-Type: application/json\r\nX-Hub-Signature-256: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        try:
            self._writer.write(head + body)
            header = await self._reader.readuntil(b"\r\n\r\n")
            lines = header.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, raw = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(raw)
                elif name == b"connection" and raw.strip().lower() == b"close":
                    close = True
            if length:
                await self._reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            return 0
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class Pool:
    """Connections shared by all senders: a sender takes one, posts, gives it back.

    First come, first served: a returned connection goes to the sender that has waited longest.
    (An asyncio.Queue lets a newcomer take a connection put back for a woken waiter, which then
    queues again at the end: under load some customers waited 25 s while the median was 70 ms, and
    the p99 measured the driver, not the system.) Idle connections are used in turn, oldest first,
    so that none sits idle past the server's keep-alive timeout and is closed under a request.
    """

    def __init__(self, host: str, port: int, size: int) -> None:
        self._idle = deque(Connection(host, port) for _ in range(size))
        self._waiters: deque[asyncio.Future[Connection]] = deque()

    async def post(self, body: bytes, signature: str) -> int:
        if self._idle and not self._waiters:
            connection = self._idle.popleft()
        else:
            waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            connection = await waiter
        try:
            return await connection.post("/webhook", body, signature)
        finally:
            self._give_back(connection)

    def _give_back(self, connection: Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    async def warm(self) -> None:
        """Open every connection before the clock starts."""
        for connection in self._idle:
            if connection._writer is None:
                connection._reader, connection._writer = await asyncio.open_connection(
                    connection._host, connection._port
                )


async def flow(args: argparse.Namespace) -> dict[str, Any]:
    payloads = Payloads(args.secret, args.run)
    pool = Pool(args.host, args.port, args.connections)
    await pool.warm()
    interval = args.customers / args.rate
    loop = asyncio.get_running_loop()
    records: list[list[Any]] = []
    retries = 0

    zero = loop.time() + 0.2
    end = zero + args.seconds

    async def customer(number: int) -> None:
        nonlocal retries
        start = zero + number / args.rate  # customers spread evenly over one interval
        step = 0
        while True:
            due = start + step * interval
            if due >= end:
                return
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            lag = loop.time() - due
            wamid, body, signature = payloads.build(number, step)
            posted = time.time()
            began = time.perf_counter()
            status = await pool.post(body, signature)
            latency = time.perf_counter() - began
            attempts = 1
            while status != 200 and attempts < args.max_attempts:
                retries += 1
                await asyncio.sleep(0.5)
                attempts += 1
                status = await pool.post(body, signature)
            records.append([number, step, wamid, posted, latency, status, attempts, lag])
            step += 1

    cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.time()
    await asyncio.gather(*(customer(n) for n in range(args.customers)))
    ended = time.time()
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "records": records,
        "started": began,
        "ended": ended,
        "retries": retries,
        "cpu_seconds": (used.ru_utime - cpu.ru_utime) + (used.ru_stime - cpu.ru_stime),
        "peak_mib": used.ru_maxrss / 1024,
    }


async def closed_loop(args: argparse.Namespace) -> dict[str, Any]:
    payloads = Payloads(args.secret, args.run)
    connections = [Connection(args.host, args.port) for _ in range(args.connections)]
    latencies: list[float] = []
    failures = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.seconds

    async def worker(index: int) -> None:
        nonlocal failures
        connection = connections[index]
        while loop.time() < deadline:
            _, body, signature = payloads.build(index, 0)
            began = time.perf_counter()
            status = await connection.post("/webhook", body, signature)
            latencies.append(time.perf_counter() - began)
            failures += status != 200

    for connection in connections:
        await connection.post("/webhook", *payloads.build(0, 0)[1:])
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    began = time.time()
    await asyncio.gather(*(worker(i) for i in range(args.connections)))
    ended = time.time()
    used = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "latencies": latencies,
        "failures": failures,
        "started": began,
        "ended": ended,
        "cpu_seconds": (used.ru_utime - cpu.ru_utime) + (used.ru_stime - cpu.ru_stime),
        "peak_mib": used.ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Meta webhook load driver")
    parser.add_argument("mode", choices=["flow", "max"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", default="R", help="makes wamids unique across runs")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--rate", type=float, default=1000.0, help="offered messages/s (flow)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--max-attempts", type=int, default=20)
    args = parser.parse_args()
    runner = flow if args.mode == "flow" else closed_loop
    tune_garbage_collector()  # as the services do: it shares the cores with them
    result = uvloop.run(runner(args))
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
