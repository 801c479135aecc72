"""`make bench`: the whole path end to end on PostgreSQL, next to bare ceilings from the same run.

Signed webhooks (bench/driver.py playing Meta) -> gateway -> flowsvc -> PostgreSQL -> the Graph API
stand-in (tests/graph_standin.py), each its own process on loopback, on a fresh migrated and seeded
database of the server at BENCH_DATABASE_URL. Customers walk the shipped order flow at a fixed
offered rate (see bench/driver.py for the exact arrival model). Reported: inbound messages/s,
webhook answer and send latency (webhook posted -> the stand-in received the last reply to it),
every message answered and every reply and mark-as-read received (counted, nothing dropped), SQL
transactions and statements per message, CPU seconds per 1,000 messages of every process on the
box (driver and stand-in included), peak memory and resident memory through the run; then the
bare ceilings: a uvicorn endpoint that only checks the signature (same driver), a unary gRPC echo
(50 in flight), `pgbench -N`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text

from bench import driver, procstat
from bench.baselines import pgbench_tps
from bench.ceilings import echo_rate
from bench.report import render
from bench.services import grpc_ready, http_json, http_ok, service
from flowsvc.engine import EngineConfig
from flowsvc.seed import seed
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.handling import MessageHandling
from flowsvc.service.inbound import InboundMessage
from flowsvc.service.templates import Templates
from flowsvc.service.turns import LeaseRequest
from flowsvc.store.db import create_db_engine, create_sessionmaker, normalize_url
from tests.database import fresh_database, migrate
from tests.servers import free_port

SECRET = "bench-app-secret"
VERIFY = "bench-verify-token"
TOKEN = "bench-access-token"


def walk_costs(url: str) -> list[dict[str, float]]:
    """Per step of the order walk: statements, commits and replies of HandleMessage, in-process."""
    engine = create_db_engine(url, pool_size=1)
    seed(Templates(create_sessionmaker(engine)))
    counts = {"statements": 0, "commits": 0}

    def on_statement(*_: Any) -> None:
        counts["statements"] += 1

    def on_commit(*_: Any) -> None:
        counts["commits"] += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    service_ = MessageHandling(create_sessionmaker(engine), TemplateCatalog(), EngineConfig())
    steps: list[list[tuple[int, int, int]]] = [[] for _ in driver.ORDER_WALK]
    try:
        for customer in range(10):
            for step, (kind, content) in enumerate(driver.ORDER_WALK * 2):
                before = dict(counts)
                handled = service_.handle(
                    InboundMessage(
                        message_id=f"wamid.walk{customer}-{step}",
                        phone_number_id=driver.BUSINESS,
                        phone_number=driver.customer_phone(customer),
                        text=content["body"] if kind == "text" else None,
                        selection_id=None if kind == "text" else content["id"],
                    ),
                    LeaseRequest("walk"),
                )
                steps[step % len(driver.ORDER_WALK)].append(
                    (
                        counts["statements"] - before["statements"],
                        counts["commits"] - before["commits"],
                        len(handled.messages),
                    )
                )
    finally:
        engine.dispose()
    return [
        {
            "statements": statistics.mean(s for s, _, _ in rows),
            "commits": statistics.mean(c for _, c, _ in rows),
            "replies": rows[-1][2],
        }
        for rows in steps
    ]


class Database:
    """The benchmark database as PostgreSQL's own counters see it."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")
        self.own_transactions = 0  # ours, to subtract from the counters

    def commits(self) -> int:
        self.own_transactions += 1
        with self._engine.connect() as connection:
            return int(
                connection.execute(
                    text(
                        "SELECT xact_commit FROM pg_stat_database "
                        "WHERE datname = current_database()"
                    )
                ).scalar_one()
            )

    def backends(self) -> list[int]:
        """The server processes serving this database's clients (not ours, not the shared ones)."""
        self.own_transactions += 1
        with self._engine.connect() as connection:
            return list(
                connection.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                ).scalars()
            )

    def outbox(self) -> tuple[int, int]:
        """(all outbox rows, rows still pending)."""
        self.own_transactions += 1
        with self._engine.connect() as connection:
            row = connection.execute(
                text("SELECT count(*), count(*) FILTER (WHERE state = 'pending') FROM outbox")
            ).one()
        return int(row[0]), int(row[1])

    def close(self) -> None:
        self._engine.dispose()


def _run_driver(mode: str, port: int, folder: Path, **options: Any) -> dict[str, Any]:
    out = folder / f"driver-{mode}.json"
    argv = [sys.executable, "-m", "bench.driver", mode, "--port", str(port), "--secret", SECRET]
    argv += ["--out", str(out), "--run", uuid.uuid4().hex[:6].upper()]
    for key, value in options.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(argv, check=True)
    return dict(json.loads(out.read_text()))


def _profile(args: argparse.Namespace, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    """py-spy (installed by hand: `pip install py-spy`) on each service while the load runs."""
    if not args.profile:
        return []
    args.profile.mkdir(parents=True, exist_ok=True)
    seconds = str(max(1, int(args.seconds) - 2))
    return [
        subprocess.Popen(
            [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "--gil",
                "--subprocesses",  # the gateway's workers
                "-r",
                "200",
                "-d",
                seconds,
                "-f",
                "raw",
            ]
            + ["-p", str(pid), "-o", str(args.profile / f"{name}.txt")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def end_to_end(args: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    graph_port, flow_port, gateway_port = free_port(), free_port(), free_port()
    flow_address = f"127.0.0.1:{flow_port}"
    counts_file = folder / "sql-{pid}.json"
    db = Database(url)
    gateway_env = {
        "META_APP_SECRET": SECRET,
        "META_VERIFY_TOKEN": VERIFY,
        "META_ACCESS_TOKEN": TOKEN,
        "GRAPH_API_URL": f"http://127.0.0.1:{graph_port}",
        "FLOWSVC_TARGET": flow_address,
        "GATEWAY_PORT": str(gateway_port),
        "GATEWAY_DEV_MODE": "0",
        "SEND_RATE_PER_SECOND": str(args.send_rate),
    }
    if args.gateway_workers:
        gateway_env["GATEWAY_WORKERS"] = str(args.gateway_workers)
    if args.gateway_concurrency:
        gateway_env["GATEWAY_CONCURRENCY"] = str(args.gateway_concurrency)
    with (
        service(
            "tests.graph_standin",
            ["--port", str(graph_port), "--token", TOKEN],
            env={},
            log=folder / "standin.log",
            ready=lambda: http_ok(f"http://127.0.0.1:{graph_port}/_standin/requests?since=0"),
        ) as standin,
        service(
            "bench.counted_flowsvc",
            [],
            env={
                "DATABASE_URL": url,
                "FLOWSVC_LISTEN": flow_address,
                "FLOWSVC_GRACE_SECONDS": "5",
                "BENCH_SQL_COUNTS": str(counts_file),
            },
            log=folder / "flowsvc.log",
            ready=lambda: grpc_ready(flow_address),
        ) as flowsvc,
        service(
            "gateway",
            [],
            env=gateway_env,
            log=folder / "gateway.log",
            ready=lambda: http_ok(f"http://127.0.0.1:{gateway_port}/readyz"),
        ) as gateway,
        watching(args, flow_address, folder) as watchers,
    ):
        groups = {
            "gateway": procstat.Group("gateway", gateway.pid),
            "flowsvc": procstat.Group("flowsvc", flowsvc.pid),
            "graph stand-in": procstat.Group("graph stand-in", standin.pid),
            "postgresql": procstat.Group("postgresql", find=db.backends),
        }
        if watchers is not None:  # the streams' client: it reads every response flowsvc writes
            groups["watchers"] = procstat.Group("watchers", watchers.pid)
        cpu_before = {name: group.cpu() for name, group in groups.items()}
        busy_before = procstat.machine_busy_seconds()
        commits_before = db.commits()
        own_before = db.own_transactions
        profilers = _profile(args, {"gateway": gateway.pid, "flowsvc": flowsvc.pid})
        sampler = procstat.ResidentSampler(
            [groups["gateway"], groups["flowsvc"]], interval=args.seconds / 10
        )
        with sampler:
            run = _run_driver(
                "flow",
                gateway_port,
                folder,
                customers=args.customers,
                rate=args.rate,
                seconds=args.seconds,
                connections=args.connections or args.customers,
            )
        for profiler in profilers:
            profiler.wait()
        sent = len(run["records"])
        expected = sum(args.walk[r[1] % len(args.walk)]["replies"] for r in run["records"])
        drain_began = time.monotonic()
        while time.monotonic() - drain_began < args.drain_seconds:
            rows, pending = db.outbox()
            if rows >= expected and pending == 0:
                break
            time.sleep(0.25)
        drained = time.monotonic() - drain_began
        time.sleep(1.5)  # mark-as-read sends still in flight; PostgreSQL flushes stats every 1 s
        own_between = db.own_transactions - own_before + 1  # the first reading's counts too
        commits_after = db.commits()
        cpu = {
            name: procstat.cpu_delta(cpu_before[name], group.cpu())
            for name, group in groups.items()
        }
        busy = procstat.machine_busy_seconds() - busy_before
        memory = {name: group.peak_mib() for name, group in groups.items() if name != "postgresql"}
        processes = {name: len(group.pids()) for name, group in groups.items()}
        received = http_json(f"http://127.0.0.1:{graph_port}/_standin/requests?since=0")
        if watchers is not None:
            watchers.send_signal(signal.SIGTERM)
            watchers.wait(30)
    db.close()
    sql = [json.loads(p.read_text()) for p in folder.glob("sql-*.json")]
    cpu["driver"] = run["cpu_seconds"]
    memory["driver"] = run["peak_mib"]
    processes["driver"] = 1
    return {
        "run": run,
        "sent": sent,
        "expected_replies": expected,
        "drained_seconds": drained,
        "received": received,
        "cpu": cpu,
        "busy": busy,
        "memory": memory,
        "resident": sampler.series,
        "processes": processes,
        "transactions": commits_after - commits_before - own_between,
        "statements": sum(c["statements"] for c in sql) if sql else None,
        "flowsvc_commits": sum(c["commits"] for c in sql) if sql else None,
        "watchers": json.loads((folder / "watchers.json").read_text())
        if (folder / "watchers.json").exists()
        else None,
    }


@contextlib.contextmanager
def watching(
    args: argparse.Namespace, flow_address: str, folder: Path
) -> Iterator[subprocess.Popen[bytes] | None]:
    """--watchers N: N WatchEvents streams (bench/watchers.py) open through the run."""
    if not args.watchers:
        yield None
        return
    ready = folder / "watchers.ready"
    with service(
        "bench.watchers",
        ["--target", flow_address, "--streams", str(args.watchers), "--out"]
        + [str(folder / "watchers.json"), "--ready", str(ready), "--types", *args.watch_types],
        env={},
        log=folder / "watchers.log",
        ready=ready.exists,
    ) as process:
        yield process


def _unread(records: list[list[Any]], reads: set[str]) -> int:
    """Inbound messages left unread: Meta marks a customer's earlier messages read with a later one,
    so a message is read when it or a later message of its customer got a read receipt."""
    newest_read: dict[int, int] = {}
    for customer, step, wamid, *_ in records:
        if wamid in reads:
            newest_read[customer] = max(step, newest_read.get(customer, -1))
    return sum(1 for customer, step, *_ in records if step > newest_read.get(customer, -1))


def analyse(result: dict[str, Any], walk: list[dict[str, float]]) -> dict[str, Any]:
    records = result["run"]["records"]
    window = result["run"]["ended"] - result["run"]["started"]
    replies: dict[str, list[float]] = defaultdict(list)
    reads: set[str] = set()
    rejected = 0
    for r in result["received"]:
        if r["status"] != 200:
            rejected += 1
        elif r["kind"] == "message":
            replies[r["body"]["to"]].append(r["at"])
        elif r["kind"] == "read":
            reads.add(r["body"]["message_id"])
    by_customer: dict[int, list[list[Any]]] = defaultdict(list)
    for r in records:
        by_customer[r[0]].append(r)
    send_latency: list[float] = []
    missing = extra = 0
    for customer, messages in by_customer.items():
        arrived = replies.get(driver.customer_phone(customer), [])
        position = 0
        for r in sorted(messages, key=lambda r: r[1]):
            count = int(walk[r[1] % len(walk)]["replies"])
            mine = arrived[position : position + count]
            position += count
            if len(mine) < count:
                missing += count - len(mine)
            elif mine:
                send_latency.append(mine[-1] - r[3])
        extra += max(0, len(arrived) - position)
    answered = sum(1 for r in records if r[5] == 200)
    return {
        "messages": len(records),
        "answered": answered,
        "first_try": sum(1 for r in records if r[6] == 1 and r[5] == 200),
        "per_second": answered / window,
        "window": window,
        "webhook_p50": procstat.quantile([r[4] for r in records], 0.5),
        "webhook_p99": procstat.quantile([r[4] for r in records], 0.99),
        "lag_p99": procstat.quantile([r[7] for r in records], 0.99),
        "send_p50": procstat.quantile(send_latency, 0.5),
        "send_p99": procstat.quantile(send_latency, 0.99),
        "replies": sum(len(v) for v in replies.values()),
        "missing": missing,
        "extra": extra,
        "reads": len(reads),
        "reads_missing": _unread(records, reads),
        "rejected_sends": rejected,
    }


def bare_webhook(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    port = free_port()
    with service(
        "bench.ceilings",
        ["webhook", "--port", str(port), "--secret", SECRET],
        env={},
        log=folder / "bare-webhook.log",
        ready=lambda: _listening(port),
    ) as server:
        before = procstat.cpu_seconds(server.pid)
        run = _run_driver("max", port, folder, seconds=args.baseline_seconds, connections=64)
        cpu = procstat.cpu_seconds(server.pid) - before
    calls = len(run["latencies"])
    return {
        "per_second": calls / (run["ended"] - run["started"]),
        "p50": procstat.quantile(run["latencies"], 0.5),
        "p99": procstat.quantile(run["latencies"], 0.99),
        "server_cpu_per_1000": cpu / calls * 1000,
        "driver_cpu_per_1000": run["cpu_seconds"] / calls * 1000,
        "failures": run["failures"],
    }


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def bare_echo(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    with service(
        "bench.ceilings",
        ["echo", "--port", str(port)],
        env={},
        log=folder / "bare-echo.log",
        ready=lambda: grpc_ready(address),
    ) as server:
        before = procstat.cpu_seconds(server.pid)
        figures = asyncio.run(echo_rate(address, args.baseline_seconds))
        figures["server_cpu_per_1000"] = (
            (procstat.cpu_seconds(server.pid) - before) / figures["calls"] * 1000
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description="end-to-end benchmark on PostgreSQL")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered inbound messages/s")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument(
        "--connections",
        type=int,
        default=0,
        help="driver -> gateway; 0: one per customer, as Meta delivers each customer's webhooks "
        "on their own (fewer makes customers queue in the driver, and that wait counts as latency)",
    )
    parser.add_argument(
        "--send-rate",
        type=float,
        default=2500.0,
        help="the gateway's per-number send limit (SEND_RATE_PER_SECOND): above what the run needs",
    )
    # Measured best for this 2-core box, everything on it: one gateway worker (the gateway's
    # default) with one HandleMessages call in flight. Two workers were best while one event loop
    # was the first thing to fill up; with a gateway at ~0.6 ms of CPU per message, one worker's
    # larger batches cost 1.60 instead of 1.86 CPU ms per message across all processes.
    parser.add_argument(
        "--gateway-workers", type=int, default=1, help="GATEWAY_WORKERS; 0: the gateway default"
    )
    parser.add_argument(
        "--gateway-concurrency",
        type=int,
        default=1,
        help="GATEWAY_CONCURRENCY, per worker; 0: the gateway default",
    )
    parser.add_argument(
        "--watchers",
        type=int,
        default=0,
        help="WatchEvents streams open through the run; their event latency is reported",
    )
    parser.add_argument(
        "--watch-types",
        nargs="*",
        default=["step_entered"],
        help="event types the watchers ask for (none: every event)",
    )
    parser.add_argument("--drain-seconds", type=float, default=60.0)
    parser.add_argument("--baseline-seconds", type=int, default=5)
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument(
        "--profile", type=Path, help="write py-spy profiles (raw format) of the services here"
    )
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory(prefix="menuflow-bench-") as name:
        folder = Path(name)
        with fresh_database(server, folder) as scratch:
            migrate(scratch)
            args.walk = walk_costs(scratch)
        with fresh_database(server, folder) as url:
            migrate(url)
            engine = create_db_engine(url, pool_size=1)
            seed(Templates(create_sessionmaker(engine)))
            engine.dispose()
            result = end_to_end(args, url, folder)
        figures = analyse(result, args.walk)
        ceilings: dict[str, Any] = {}
        if not args.no_baselines:
            ceilings["webhook"] = bare_webhook(args, folder)
            ceilings["echo"] = bare_echo(args, folder)
            ceilings["pgbench"] = pgbench_tps(server, seconds=args.baseline_seconds)
        print(render(args, result, figures, ceilings))
        if os.environ.get("BENCH_KEEP_LOGS"):
            for log in folder.glob("*.log"):
                target = Path(os.environ["BENCH_KEEP_LOGS"]) / log.name
                target.write_text(log.read_text())


if __name__ == "__main__":
    main()
