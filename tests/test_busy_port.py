"""A port already taken: each service says so in one line and exits nonzero, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest


@pytest.fixture
def held_port() -> Iterator[int]:
    """A loopback port someone else listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def run(module: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("META_", "GATEWAY_"))}
    return subprocess.run(
        [sys.executable, "-m", module],
        env=env | environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_flowsvc_on_a_busy_port(held_port: int, migrated_database: str) -> None:
    result = run("flowsvc", DATABASE_URL=migrated_database, FLOWSVC_LISTEN=f"127.0.0.1:{held_port}")

    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"flowsvc: cannot listen on 127.0.0.1:{held_port} (FLOWSVC_LISTEN): address already in "
        "use; another flowsvc may be running there: stop it, or set FLOWSVC_LISTEN to another "
        "address"
    ]
    assert result.stdout == ""


def test_the_gateway_on_a_busy_port(held_port: int) -> None:
    result = run("gateway", GATEWAY_DEV_MODE="1", GATEWAY_PORT=str(held_port))

    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        f"gateway: cannot listen on 127.0.0.1:{held_port} (GATEWAY_LISTEN_HOST, GATEWAY_PORT): "
        "address already in use; another gateway may be running there: stop it, or set "
        "GATEWAY_PORT to another port"
    ]
    assert result.stdout == ""
