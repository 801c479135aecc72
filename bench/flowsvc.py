"""`make bench-flowsvc`: HandleMessage throughput, latency and SQL cost on PostgreSQL.

Three measurements in one run, on a fresh database of the PostgreSQL server at
BENCH_DATABASE_URL (default: the machine's, 127.0.0.1:5432):
  1. SQL statements, round trips and transactions per message, counted in-process with SQLAlchemy
     events while customers walk the order flow one message at a time;
  2. throughput, latency and CPU seconds per 1,000 messages of HandleMessage over gRPC against
     `python -m flowsvc` in its own process, with N customers walking the order flow in parallel;
  3. `pgbench -N` on the same server, as the baseline the throughput is a ratio of.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from sqlalchemy import event

from bench.baselines import pgbench_tps
from bench.procstat import cpu_seconds, peak_memory_mib, quantile
from flowsvc.engine import EngineConfig
from flowsvc.seed import seed
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.handling import MessageHandling
from flowsvc.service.inbound import InboundMessage
from flowsvc.service.templates import Templates
from flowsvc.service.turns import LeaseRequest
from flowsvc.store.db import create_db_engine, create_sessionmaker
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.database import fresh_database, migrate
from tests.servers import flowsvc_process

BUSINESS = "100000000000001"
# One walk down the order flow: (kind, value) per inbound message.
ORDER_WALK = [
    ("text", "hi"),
    ("tap", "new_order"),
    ("tap", "coffee"),
    ("text", "2"),
    ("tap", "pickup"),
    ("tap", "yes"),
]
ids = itertools.count()


def statements_per_message(database_url: str, customers: int) -> dict[str, Any]:
    """Count statements and commits per HandleMessage, by outcome, in-process."""
    engine = create_db_engine(database_url, pool_size=2)
    statements = round_trips = commits = 0

    def on_statement(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        nonlocal statements, round_trips
        round_trips += 1
        statements += 1 + sql.strip().rstrip(";").count(";")  # several in one round trip

    def on_commit(*_: Any) -> None:
        nonlocal commits
        commits += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    sessions = create_sessionmaker(engine)
    service = MessageHandling(sessions, TemplateCatalog(), EngineConfig())
    per_outcome: dict[str, list[tuple[int, int, int]]] = {}
    try:
        for customer in range(customers):
            for kind, value in ORDER_WALK:
                before = (statements, round_trips, commits)
                handled = service.handle(
                    InboundMessage(
                        message_id=f"wamid.count{next(ids)}",
                        phone_number_id=BUSINESS,
                        phone_number=str(15550000000 + customer),
                        text=value if kind == "text" else None,
                        selection_id=value if kind == "tap" else None,
                    ),
                    LeaseRequest("bench"),
                )
                per_outcome.setdefault(handled.outcome, []).append(
                    (statements - before[0], round_trips - before[1], commits - before[2])
                )
    finally:
        engine.dispose()
    return {
        outcome: {
            "messages": len(counts),
            "statements": statistics.mean(c[0] for c in counts),
            "max_statements": max(c[0] for c in counts),
            "round_trips": statistics.mean(c[1] for c in counts),
            "transactions": statistics.mean(c[2] for c in counts),
        }
        for outcome, counts in sorted(per_outcome.items())
    }


async def drive(address: str, customers: int, seconds: float) -> dict[str, Any]:
    """N customers walk the order flow over and over for `seconds`; latency of every call."""
    latencies: list[float] = []
    outcomes: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(address) as channel:
        stub = flow_pb2_grpc.FlowServiceStub(channel)

        async def customer(number: int) -> None:
            phone = str(15560000000 + number)
            while time.monotonic() < deadline:
                for kind, value in ORDER_WALK:
                    message = flow_pb2.InboundMessage(
                        message_id=f"wamid.bench{next(ids)}",
                        customer=flow_pb2.Customer(phone_number_id=BUSINESS, phone_number=phone),
                    )
                    if kind == "text":
                        message.text = value
                    else:
                        message.selection.id = value
                    started = time.perf_counter()
                    response = await stub.HandleMessage(
                        flow_pb2.HandleMessageRequest(message=message)
                    )
                    latencies.append(time.perf_counter() - started)
                    outcomes[response.outcome] += 1

        started = time.monotonic()
        await asyncio.gather(*(customer(n) for n in range(customers)))
        elapsed = time.monotonic() - started
    return {
        "messages": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 0.5) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "completed_orders": outcomes[flow_pb2.OUTCOME_COMPLETED],
    }


def backend_pids(database_url: str) -> list[int]:
    """The PostgreSQL server processes serving this database's connections (flowsvc's pool)."""
    engine = create_db_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description="HandleMessage benchmark on PostgreSQL")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory() as folder, fresh_database(server, Path(folder)) as url:
        migrate(url)
        engine = create_db_engine(url, pool_size=1)
        seed(Templates(create_sessionmaker(engine)))
        engine.dispose()
        counts = statements_per_message(url, customers=20)
        with flowsvc_process(url, Path(folder) / "flowsvc.log", LOG_LEVEL="WARNING") as process:
            asyncio.run(drive(process.address, args.customers, 2))  # warm up
            backends = backend_pids(url)
            cpu_before = (
                cpu_seconds(process.popen.pid),
                sum(map(cpu_seconds, backends)),
                time.process_time(),
            )
            figures = asyncio.run(drive(process.address, args.customers, args.seconds))
            cpu_after = (
                cpu_seconds(process.popen.pid),
                sum(map(cpu_seconds, backends)),
                time.process_time(),
            )
            memory = peak_memory_mib(process.popen.pid)
    per_thousand = [
        1000 * (b - a) / figures["messages"] for a, b in zip(cpu_before, cpu_after, strict=True)
    ]
    tps = pgbench_tps(server)

    print("\nSQL per HandleMessage (order flow, in-process, by outcome)")
    print(
        f"  {'outcome':<16}{'messages':>10}{'statements':>12}{'max':>6}{'round trips':>13}"
        f"{'transactions':>14}"
    )
    for outcome, row in counts.items():
        print(
            f"  {outcome:<16}{row['messages']:>10}{row['statements']:>12.1f}"
            f"{row['max_statements']:>6}{row['round_trips']:>13.1f}{row['transactions']:>14.1f}"
        )
    print(f"\nHandleMessage over gRPC, {args.customers} customers, {args.seconds:.0f} s")
    print(f"  messages handled       {figures['messages']:>10}")
    print(f"  messages/s             {figures['per_second']:>10.0f}")
    print(f"  latency p50 / p99      {figures['p50_ms']:>7.1f} ms / {figures['p99_ms']:.1f} ms")
    print(f"  orders completed       {figures['completed_orders']:>10}")
    print(f"  flowsvc peak memory    {memory:>10.0f} MiB")
    print(
        f"  CPU s per 1,000 msgs   flowsvc {per_thousand[0]:.2f}, postgres {per_thousand[1]:.2f}"
        f" (its backends), load driver {per_thousand[2]:.2f}"
    )
    print(f"  pgbench -N (8 clients) {tps:>10.0f} tx/s")
    print(f"  ratio messages/s : pgbench tx/s = {figures['per_second'] / tps:.3f}")


if __name__ == "__main__":
    main()
