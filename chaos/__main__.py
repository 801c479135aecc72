"""`python -m chaos [--short]`: the fault suite. Starts the system on loopback, runs every
scenario, prints the table; exits 1 when any invariant failed."""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from chaos import report
from chaos.logs import scan
from chaos.scenarios import Outcome, run, scenarios
from chaos.system import System
from flowsvc.store.db import create_db_engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the CI form: a few minutes")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="fail on the known, reported issues too: tracebacks logged while PostgreSQL was "
        "down, and a flowsvc that exits when started while PostgreSQL is down",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    folder = Path(tempfile.mkdtemp(prefix="menuflow-chaos-"))
    print(f"chaos: seed {seed}, logs in {folder}", flush=True)
    chosen = [s for s in scenarios(args.short) if not args.only or s.name in args.only]
    started = time.monotonic()
    system = System(folder, graph_timeout=3 if args.short else 5)
    outcomes: list[Outcome] = []
    exits: dict[str, list[int]] = {}
    try:
        system.start()
        print(f"chaos: system up in {time.monotonic() - started:.1f} s", flush=True)
        outcomes = asyncio.run(_run_all(system, chosen, seed, args.short))
    finally:
        exits = system.stop()
    outages = [(w.start, w.end) for o in outcomes for w in o.windows if w.kind == "postgres"]
    logs = scan({s.name: s.log for s in system.services}, outages)
    print()
    print(report.table(outcomes))
    print()
    failed_starts = {s.name: s.failed_starts for s in system.services}
    for line in report.details(outcomes, logs, exits, failed_starts):
        print(line)
    # uvicorn re-raises the SIGTERM it handled once its shutdown is done: -15 is a clean stop.
    unclean = {n: codes for n, codes in exits.items() if codes and codes[-1] not in (0, -15)}
    failed = (
        any(o.findings.failures or o.crashed or o.tally.undelivered for o in outcomes)
        or logs.traceback_count > 0
        or (args.strict and bool(logs.outage_tracebacks))
        or (args.strict and any(failed_starts.values()))
        or bool(unclean)
        or len(outcomes) != len(chosen)
    )
    print(f"\nchaos: {'FAILED' if failed else 'passed'} in {time.monotonic() - started:.0f} s")
    if unclean:
        print(f"chaos: services that did not stop cleanly: {unclean}")
    if not failed and not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"chaos: logs kept in {folder}")
    return 1 if failed else 0


async def _run_all(system: System, chosen: list, seed: int, short: bool) -> list[Outcome]:
    rng = random.Random(seed)
    engine = create_db_engine(system.postgres.url, pool_size=2)
    limit, drain = (45.0, 60.0) if short else (180.0, 150.0)
    outcomes = []
    try:
        for index, scenario in enumerate(chosen):
            began = time.monotonic()
            # Customers keep coming until after the scenario's faults (3 minutes for the longest).
            longest = max(limit, scenario.ramp + 20.0)
            outcome = await run(
                system, scenario, index, rng, engine, limit=longest, drain_limit=drain
            )
            outcomes.append(outcome)
            print(
                f"chaos: {scenario.name} done in {time.monotonic() - began:.1f} s: "
                + " ".join(report.row(outcome)[1:]),
                flush=True,
            )
    finally:
        engine.dispose()
    return outcomes


if __name__ == "__main__":
    sys.exit(main())
