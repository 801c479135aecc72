"""What event watchers cost flowsvc, alone: `python -m bench.fanout --streams 100 --seconds 15`.

flowsvc runs in its own process on a fresh PostgreSQL database (BENCH_DATABASE_URL, default the
machine's); this process commits `--events` step entries per transaction, `--commits` times a
second, as HandleMessages' batches do at 1,000 messages/s. flowsvc's CPU is measured first with no
stream open (the baseline, same run), then with `--streams` WatchEvents streams following step
entries (bench/watchers.py, in a process of its own): the difference per response written is
what one stream's response costs flowsvc.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.procstat import cpu_seconds
from bench.services import grpc_ready, service
from flowsvc.store import events
from flowsvc.store.db import create_db_engine, create_sessionmaker
from tests.database import fresh_database, migrate

ADDRESS = "127.0.0.1:50779"
CUSTOMER = ("100000000000001", "15550001")


def commit_steadily(url: str, per_commit: int, per_second: float, stop: threading.Event) -> None:
    engine = create_db_engine(url, pool_size=1)
    sessions = create_sessionmaker(engine)
    events.attach(sessions)
    try:
        while not stop.wait(1 / per_second):
            with sessions() as session, session.begin():
                events.record(session, [events.Draft("step_entered", CUSTOMER)] * per_commit)
    finally:
        engine.dispose()


def flowsvc_cpu(pid: int, seconds: float) -> float:
    """flowsvc's CPU seconds per second over `seconds`."""
    before, began = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - began)


def main(args: argparse.Namespace) -> None:
    server = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with (
        tempfile.TemporaryDirectory() as folder_name,
        fresh_database(server, Path(folder_name)) as url,
    ):
        folder = Path(folder_name)
        migrate(url)
        env = {"DATABASE_URL": url, "FLOWSVC_LISTEN": ADDRESS, "LOG_LEVEL": "WARNING"}
        with service(
            "flowsvc", [], env=env, log=folder / "flowsvc.log", ready=lambda: grpc_ready(ADDRESS)
        ) as flowsvc:
            stop = threading.Event()
            committer = threading.Thread(
                target=commit_steadily, args=(url, args.events, args.commits, stop)
            )
            committer.start()
            try:
                time.sleep(1)
                alone = flowsvc_cpu(flowsvc.pid, args.seconds)
                ready, out = folder / "watchers.ready", folder / "watchers.json"
                watchers = subprocess.Popen(
                    [sys.executable, "-m", "bench.watchers", "--target", ADDRESS]
                    + ["--streams", str(args.streams), "--out", str(out), "--ready", str(ready)]
                )
                while not ready.exists():
                    time.sleep(0.1)
                time.sleep(1)
                watched = flowsvc_cpu(flowsvc.pid, args.seconds)
                watchers.send_signal(signal.SIGTERM)
                watchers.wait(30)
            finally:
                stop.set()
                committer.join()
        figures = json.loads(out.read_text())
    # The streams' lifetime is the measured span plus about 1 s of warm-up.
    per_second = figures["responses"] / (args.seconds + 1)
    extra = watched - alone
    print(f"flowsvc alone, {args.commits:g} commits/s of {args.events} step entries each")
    print(f"  flowsvc CPU, no stream                 {alone:.3f} s/s")
    print(f"  flowsvc CPU, {args.streams} streams              {watched:.3f} s/s")
    print(f"  responses written                      {per_second:.0f}/s (about)")
    print(f"  flowsvc CPU per response               {extra / per_second * 1e3:.3f} ms")
    print(f"  event p50 / p99                        {figures['p50'] * 1e3:.1f} / ", end="")
    print(f"{figures['p99'] * 1e3:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--events", type=int, default=100, help="step entries per commit")
    parser.add_argument("--commits", type=float, default=10, help="commits per second")
    main(parser.parse_args())
