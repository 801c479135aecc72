"""Baselines measured in the same run as a figure, so the figure can be read as a ratio on a
shared, noisy machine: pgbench -N on the same PostgreSQL server."""

from __future__ import annotations

import re
import subprocess
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flowsvc.store.db import normalize_url


def pgbench_tps(server_url: str, *, clients: int = 8, seconds: int = 10) -> float:
    """Transactions/s of `pgbench -N` (no-vacuum simple-update) on a scratch database."""
    url = make_url(normalize_url(server_url))
    name = f"menuflow_pgbench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    connect = [
        "-h",
        url.host or "127.0.0.1",
        "-p",
        str(url.port or 5432),
        "-U",
        url.username or "postgres",
    ]
    try:
        subprocess.run(["pgbench", "-i", "-q", *connect, name], check=True, capture_output=True)
        result = subprocess.run(
            ["pgbench", "-N", "-c", str(clients), "-j", "2", "-T", str(seconds), *connect, name],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    found = re.search(r"tps = ([0-9.]+)", result.stdout)
    if not found:
        raise RuntimeError(f"pgbench printed no tps: {result.stdout}")
    return float(found.group(1))
