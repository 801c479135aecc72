"""The system under test as separate processes on loopback: each started, killed and restarted by
the harness, with its output appended to one log file per process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
APP_SECRET = "chaos-app-secret"
VERIFY_TOKEN = "chaos-verify-token"
ACCESS_TOKEN = "chaos-access-token"
FLOWSVC_TOKEN = "chaos-flowsvc-token"
FAILED_START = "=== chaos: failed start"


@dataclass
class Service:
    """One process of the system: how to start it, and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready: str  # "http:<url>" or "grpc:<address>"
    popen: subprocess.Popen[bytes] | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # exit codes seen by the harness
    failed_starts: list[str] = field(default_factory=list)

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait until ready; returns the wall time it became ready.

        Like a supervisor with restart-on-failure: a process that exits while starting is
        started again (each such exit is recorded in `failed_starts` and in its log)."""
        deadline = time.monotonic() + timeout
        while True:
            self.starts += 1
            with self.log.open("ab") as out:
                out.write(f"\n=== chaos: start #{self.starts} of {self.name} ===\n".encode())
                out.flush()
                self.popen = subprocess.Popen(
                    self.argv,
                    cwd=ROOT,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            while time.monotonic() < deadline:
                if self.popen.poll() is not None or self._is_ready():
                    break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"{self.name} not ready within {timeout} s: see {self.log}")
            code = self.popen.poll()
            if code is None:
                return time.time()
            self.exits.append(code)
            self.failed_starts.append(f"start #{self.starts} exited with {code}: {self._last()}")
            with self.log.open("ab") as out:
                out.write(f"{FAILED_START} #{self.starts} exited with {code} ===\n".encode())
            time.sleep(1.0)

    def _last(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return next((x for x in reversed(lines) if x and not x.startswith((" ", "\t"))), "")

    def _is_ready(self) -> bool:
        kind, _, target = self.ready.partition(":")
        if kind == "http":
            try:
                return httpx.get(target, timeout=1.0).status_code == 200
            except httpx.HTTPError:
                return False
        with grpc.insecure_channel(target) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1.0
                )
            except grpc.RpcError:
                return False
            return reply.status == health_pb2.HealthCheckResponse.SERVING

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases and in-flight calls are left as they are."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.exits.append(self.popen.wait(30))

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL after `grace`. Returns the exit code."""
        if self.popen is None or self.popen.poll() is not None:
            return None if self.popen is None else self.popen.returncode
        self.popen.send_signal(signal.SIGTERM)
        try:
            code = self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            code = self.popen.wait(10)
        self.exits.append(code)
        return code

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def standin(port: int, folder: Path, *, statuses_to: Sequence[str] = ()) -> Service:
    argv = [sys.executable, "-m", "tests.graph_standin", "--port", str(port)]
    argv += ["--token", ACCESS_TOKEN, "--app-secret", APP_SECRET]
    for url in statuses_to:
        argv += ["--statuses-to", url]
    return Service(
        "graph-standin",
        argv,
        dict(os.environ),
        folder / "graph-standin.log",
        f"http:http://127.0.0.1:{port}/_standin/requests?since=1000000000",
    )


def flowsvc(name: str, port: int, database_url: str, folder: Path) -> Service:
    env = dict(os.environ) | {
        "DATABASE_URL": database_url,
        "FLOWSVC_LISTEN": f"127.0.0.1:{port}",
        "FLOWSVC_GRACE_SECONDS": "3",
        "FLOWSVC_TOKEN": FLOWSVC_TOKEN,
        "LOG_LEVEL": "INFO",
    }
    return Service(
        name,
        [sys.executable, "-m", "flowsvc"],
        env,
        folder / f"{name}.log",
        f"grpc:127.0.0.1:{port}",
    )


def gateway(
    name: str,
    port: int,
    flowsvc_ports: list[int],
    graph_url: str,
    folder: Path,
    *,
    graph_timeout: int,
    extra_env: dict[str, str] | None = None,
) -> Service:
    # Each gateway prefers its own replica and fails over to the other (pick_first over a list).
    target = "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in flowsvc_ports)
    env = (
        dict(os.environ)
        | {
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
            "META_ACCESS_TOKEN": ACCESS_TOKEN,
            "GRAPH_API_URL": graph_url,
            "GRAPH_TIMEOUT_SECONDS": str(graph_timeout),
            # As short as the gateway allows: how long a killed gateway's messages wait for it.
            "OUTBOX_LEASE_SECONDS": str(2 * (graph_timeout + min(5, graph_timeout) + 1)),
            "OUTBOX_POLL_SECONDS": "0.5",
            "FLOWSVC_TARGET": target,
            "FLOWSVC_TOKEN": FLOWSVC_TOKEN,
            "FLOWSVC_TIMEOUT_SECONDS": "10",
            "GATEWAY_PORT": str(port),
            "GATEWAY_SHUTDOWN_GRACE_SECONDS": "5",
            "LOG_LEVEL": "INFO",
        }
        | (extra_env or {})
    )
    return Service(
        name,
        [sys.executable, "-m", "gateway"],
        env,
        folder / f"{name}.log",
        f"http:http://127.0.0.1:{port}/healthz",
    )
