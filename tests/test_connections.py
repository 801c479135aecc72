"""Nobody can hold the gateway's connections: idle and dripping clients are cut off at the head
deadline (408) while signed webhooks keep being answered, a 408 closes its connection even while
the client keeps sending, and past the connection cap a new connection is refused at once (503)."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from menuflow.v1 import flow_pb2_grpc
from tests.gateway_harness import (
    gateway_settings,
    message,
    post_webhook,
    running_gateway,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import ServerThread, StandinServer
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
HEAD_TIMEOUT = 1.0
IDLE, DRIPPING = 300, 30


@pytest.fixture(scope="module")
def graph() -> Iterator[StandinServer]:
    server = StandinServer()
    with server:
        yield server


@pytest.fixture
def gateway(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> Iterator[ServerThread]:
    seed_default_templates(stub)
    settings = gateway_settings(
        flowsvc_target, graph.url, head_timeout_seconds=HEAD_TIMEOUT, body_timeout_seconds=1.0
    )
    with running_gateway(settings) as server:
        yield server


def connect(server: ServerThread) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setblocking(False)
    return sock


class Watched:
    """Sockets, each read until the server closes it: what it answered, and when it closed."""

    def __init__(self, sockets: list[socket.socket]) -> None:
        self.answers: dict[socket.socket, bytes] = {sock: b"" for sock in sockets}
        self.closed_at: dict[socket.socket, float] = {}
        self._selector = selectors.DefaultSelector()
        for sock in sockets:
            self._selector.register(sock, selectors.EVENT_READ)

    def poll(self) -> int:
        """Read what arrived; how many sockets are still open."""
        for key, _ in self._selector.select(timeout=0.05):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if data:
                self.answers[sock] += data
            else:
                self.closed_at[sock] = time.monotonic()
                self._selector.unregister(sock)
        return len(self.answers) - len(self.closed_at)

    def close(self) -> None:
        self._selector.close()
        for sock in self.answers:
            sock.close()


def drip(sockets: list[socket.socket], stop: threading.Event) -> None:
    """One byte of a request head every 0.2 s on each socket (under the header size limit)."""
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
    for byte in head:
        if stop.wait(0.2):
            return
        for sock in sockets:
            try:
                sock.send(bytes([byte]))
            except OSError:
                pass  # closed by the server: what the test waits for


def test_idle_and_dripping_connections_are_cut_off_while_webhooks_are_answered(
    gateway: ServerThread,
) -> None:
    opened = time.monotonic()
    idle = [connect(gateway) for _ in range(IDLE)]
    dripping = [connect(gateway) for _ in range(DRIPPING)]
    watched = Watched(idle + dripping)
    stop = threading.Event()
    dripper = threading.Thread(target=drip, args=(dripping, stop), daemon=True)
    dripper.start()
    answered = []
    try:
        with httpx.Client(base_url=gateway.url, timeout=30) as client:
            while watched.poll() and time.monotonic() - opened < 30:
                response = post_webhook(client, webhook(message("16505551234", text="hi")))
                answered.append(response.status_code)
        held = watched.poll()
        last_closed = max(watched.closed_at.values(), default=opened) - opened
    finally:
        stop.set()
        dripper.join()
        watched.close()
    print(f"held after the deadline: {held}; last closed {last_closed:.1f} s after opening")
    assert held == 0  # every one of them closed by the server (a few seconds; no timing asserted)
    assert {answer[:12] for answer in watched.answers.values()} == {b"HTTP/1.1 408"}
    assert answered and set(answered) == {200}  # webhooks answered all along


def test_a_408_closes_the_connection_even_while_the_client_keeps_sending(
    gateway: ServerThread,
) -> None:
    sock = connect(gateway)
    sock.setblocking(True)
    sock.settimeout(0.05)
    sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n{")
    answer, closed = b"", False
    deadline = time.monotonic() + 30
    try:
        while not closed and time.monotonic() < deadline:
            try:
                sock.send(b" ")  # a body that never ends, a byte at a time
                data = sock.recv(4096)
                answer += data
                closed = not data
            except TimeoutError:
                continue
            except OSError:
                closed = True
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in answer
    assert closed


def test_past_the_connection_cap_a_new_connection_is_refused_at_once(
    flowsvc_target: str, graph: StandinServer, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    seed_default_templates(stub)
    settings = gateway_settings(flowsvc_target, graph.url, max_connections=20)
    with (
        running_gateway(settings) as gateway,
        httpx.Client(base_url=gateway.url, timeout=30) as client,
    ):
        assert client.get("/healthz").status_code == 200  # one connection, kept alive
        held = [connect(gateway) for _ in range(19)]
        refused = connect(gateway)
        watched = Watched([refused])
        try:
            wait_until(lambda: watched.poll() == 0)
            assert watched.answers[refused].startswith(b"HTTP/1.1 503")
            # The connections already open are still served.
            assert (
                post_webhook(client, webhook(message("16505551234", text="hi"))).status_code == 200
            )
        finally:
            watched.close()
            for sock in held:
                sock.close()
        # Once the held connections are gone, new ones are taken again.
        with httpx.Client(base_url=gateway.url, timeout=30) as fresh:
            wait_until(lambda: fresh.get("/healthz").status_code == 200)


def test_a_keep_alive_connection_idle_past_the_idle_limit_is_closed(
    flowsvc_target: str, graph: StandinServer
) -> None:
    settings = gateway_settings(flowsvc_target, graph.url, idle_timeout_seconds=0.5)
    with running_gateway(settings) as gateway:
        sock = connect(gateway)
        sock.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        watched = Watched([sock])
        try:
            wait_until(lambda: watched.poll() == 0)
        finally:
            watched.close()
    assert watched.answers[sock].startswith(b"HTTP/1.1 200")  # answered, then closed when idle


def test_each_worker_process_keeps_the_head_deadline(flowsvc_target: str) -> None:
    """With GATEWAY_WORKERS > 1 uvicorn sends its config to the worker processes by pickling:
    the gateway starts, answers, and cuts off an idle connection in whichever worker took it."""
    port = free_port()
    env = os.environ | {
        "FLOWSVC_TARGET": flowsvc_target,
        "GATEWAY_PORT": str(port),
        "GATEWAY_WORKERS": "2",
        "GATEWAY_DEV_MODE": "1",
        "GATEWAY_HEAD_TIMEOUT_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("META_ACCESS_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

            def healthy() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, timeout=30)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
        for sock in idle:
            assert sock.recv(4096).startswith(b"HTTP/1.1 408 ")  # waits at most the timeout
            sock.close()
    finally:
        process.terminate()
        process.wait(30)
