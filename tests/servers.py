"""Real servers on loopback for tests: flowsvc in this process, or as its own process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from flowsvc.server import Server, create_server
from flowsvc.settings import Settings


@contextmanager
def running_flowsvc(settings: Settings) -> Iterator[Server]:
    """Start flowsvc on a free port (settings.listen should end in :0) and stop it afterwards."""
    server = create_server(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Process:
    address: str
    popen: subprocess.Popen[bytes]


def spawn_flowsvc(database_url: str, log_path: Path, **environ: str) -> Process:
    """`python -m flowsvc` started as its own process on a free port, its stderr in `log_path`;
    not waited for."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "FLOWSVC_LISTEN": address,
        "FLOWSVC_GRACE_SECONDS": "2",
        **environ,
    }
    with log_path.open("w") as log:
        return Process(
            address, subprocess.Popen([sys.executable, "-m", "flowsvc"], env=env, stderr=log)
        )


@contextmanager
def flowsvc_process(database_url: str, log_path: Path, **environ: str) -> Iterator[Process]:
    """`python -m flowsvc` as its own process once it serves, stopped with SIGTERM (asserting a
    clean exit)."""
    process = spawn_flowsvc(database_url, log_path, **environ)
    try:
        with grpc.insecure_channel(process.address) as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=30)
            except grpc.FutureTimeoutError:
                raise RuntimeError(f"flowsvc did not start: {log_path.read_text()}") from None
        yield process
    finally:
        process.popen.send_signal(signal.SIGTERM)
        code = process.popen.wait(30)
    assert code == 0, log_path.read_text()
