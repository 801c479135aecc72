"""The SQL path of a message in-process, for A/B runs on a noisy box: HandleMessages batches and
the acks of their replies against a fresh PostgreSQL database (BENCH_DATABASE_URL's server), as
client CPU, the PostgreSQL backend's CPU and round trips per message. No gRPC, no gateway: what
changes here is what the store and service layers cost.

    python -m bench.sql_path [--batch 20] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text

from bench import driver
from flowsvc.engine import EngineConfig
from flowsvc.seed import seed
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.deliveries import Ack, AckKind, Deliveries
from flowsvc.service.handling import MessageHandling
from flowsvc.service.inbound import InboundMessage
from flowsvc.service.templates import Templates
from flowsvc.service.turns import LeaseRequest
from flowsvc.store.db import create_db_engine, create_sessionmaker
from tests.database import fresh_database, migrate

CUSTOMERS = 200


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process on this box (the PostgreSQL backend)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(url: str, batch: int, rounds: int) -> dict[str, float]:
    migrate(url)
    engine = create_db_engine(url, pool_size=1)
    sessions = create_sessionmaker(engine)
    seed(Templates(sessions))
    counts = {"statements": 0}

    def on_statement(*_: Any) -> None:
        counts["statements"] += 1

    event.listen(engine, "before_cursor_execute", on_statement)
    with engine.connect() as connection:  # the pool's one connection: every call below uses it
        backend = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    handling = MessageHandling(sessions, TemplateCatalog(), EngineConfig())
    deliveries = Deliveries(sessions)
    messages, n = 0, 0
    statements, cpu, pg = counts["statements"], time.process_time(), _cpu_seconds(backend)
    try:
        for _ in range(rounds):
            for kind, content in driver.ORDER_WALK:
                for start in range(0, CUSTOMERS, batch):
                    inbound = []
                    for customer in range(start, min(start + batch, CUSTOMERS)):
                        n += 1
                        inbound.append(
                            InboundMessage(
                                message_id=f"wamid.sql{n}",
                                phone_number_id=driver.BUSINESS,
                                phone_number=driver.customer_phone(customer),
                                text=content["body"] if kind == "text" else None,
                                selection_id=None if kind == "text" else content["id"],
                            )
                        )
                    done = handling.handle_many(inbound, LeaseRequest("bench"))
                    messages += len(inbound)
                    ids = [m.id for h in done if not isinstance(h, Exception) for m in h.messages]
                    acks = [
                        Ack(id=i, kind=AckKind.SENT, wa_message_id=f"wamid.out{i}") for i in ids
                    ]
                    deliveries.ack("bench", acks, lease_next_seconds=60)
        return {
            "messages": messages,
            "client_cpu_ms_per_message": 1000 * (time.process_time() - cpu) / messages,
            "postgresql_cpu_ms_per_message": 1000 * (_cpu_seconds(backend) - pg) / messages,
            "round_trips_per_message": (counts["statements"] - statements) / messages,
        }
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=20, help="messages per HandleMessages")
    parser.add_argument("--rounds", type=int, default=10, help="walks of the order flow")
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory() as folder, fresh_database(server, Path(folder)) as url:
        figures = run(url, args.batch, args.rounds)
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
