"""The scenarios: each a load of customers with one kind of fault, then all of them together."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from chaos.customers import TIMER_STAGES, make_customers
from chaos.driver import Delivery, Driver, Tally
from chaos.invariants import (
    Ambiguity,
    Findings,
    armed_timers,
    check,
    committed_completions,
    pending_calls,
    pending_replies,
)
from chaos.logs import LogScan, scan
from chaos.system import System

DUPLICATES = Delivery(copies=(2, 3), concurrent=0.4, batch=3, reversed_pairs=0.15)
# Graph API failures, in this order, as shares of the fault's length. Pair-rate (131056) comes
# first: the gateway backs off 4^attempts s for it, so after many 503s it would wait minutes.
GRAPH_PHASES = (
    ("131056", 0.1),
    ("503", 0.25),
    ("drop", 0.25),
    ("4", 0.13),
    ("80007", 0.13),
    ("130429", 0.14),
)
# The Graph API holds every send for this long, then both gateways are SIGKILLed: each message
# whose request arrived meanwhile is accepted by "Meta" after its sender died, so no ack comes.
IN_FLIGHT = 1.5
IN_FLIGHT_ROUNDS = 2


# Meta down: HTTP 500 with 131000 ("Something went wrong") for every message and read receipt.
OUTAGE = {"kind": "error", "code": 131000, "reads": True}
FLAPPING_DOWN, FLAPPING_UP = 5.0, 1.0  # seconds: down 5, up 1, again


@dataclass(frozen=True)
class Fault:
    kind: str  # graph | kill_gateway | kill_flowsvc | postgres | kill_in_flight
    kind: str  # graph | graph_outage | graph_flapping | kill_gateway | kill_flowsvc | postgres
    at: float  # seconds after the scenario started
    seconds: float  # how long it lasts (a killed process stays down this long)


@dataclass(frozen=True)
class Scenario:
    name: str
    customers: int
    ramp: float  # customers start spread over this many seconds
    delivery: Delivery = Delivery()
    bursts: int = 0  # customers who send 20+ messages within a second
    faults: tuple[Fault, ...] = ()


@dataclass
class Window:
    kind: str
    start: float  # wall clock
    end: float = 0.0
    detail: str = ""
    recovery: float | None = None  # seconds from `end` until the system worked again
    held: list[tuple[float, float]] = field(default_factory=list)  # sends held, then SIGKILL


@dataclass
class Outcome:
    scenario: Scenario
    tally: Tally
    findings: Findings
    windows: list[Window]
    recovery: float | None  # the longest, over the scenario's faults
    drain: float  # seconds from the driver's end (or the last fault's end) until nothing pending
    failed_requests: int  # Graph API requests answered with an error or dropped
    crashed: list[str] = field(default_factory=list)
    logs: LogScan | None = None
    in_flight: int = 0  # replies Meta accepted after their gateway was killed (no ack came)


def scenarios(short: bool) -> list[Scenario]:
    """Each fault on its own, then all together; customers keep coming until after the faults."""
    n, bursts = (50, 4) if short else (300, 12)
    graph, kill, pg = (10.0, 3.0, 5.0) if short else (36.0, 5.0, 8.0)
    flapping = (Fault("graph_flapping", 2.0 if short else 8.0, 18.0 if short else 60.0),)
    outage = (Fault("graph_outage", 8.0, 180.0),)
    at = 2.0 if short else 8.0
    tail = 4.0 if short else 10.0  # customers still arriving after the last fault ended
    quiet = 10.0 if short else 40.0  # ramp of the scenarios without faults
    every = (
        Fault("graph", at, graph),
        Fault("kill_gateway", at + 1, kill),
        Fault("kill_flowsvc", at + 2 + kill, kill),
        Fault("postgres", at + 3 + 2 * kill, pg),
    )
    postgres = (Fault("postgres", at, pg),)
    sigkill = (Fault("kill_gateway", at, kill), Fault("kill_flowsvc", at + kill + 2, kill))
    in_flight = (Fault("kill_in_flight", at, kill),)

    def ramp(faults: tuple[Fault, ...]) -> float:
        return max(f.at + f.seconds for f in faults) + tail

    long_only = [] if short else [Scenario("graph_outage_3min", n, ramp(outage), faults=outage)]
    return [
        Scenario("duplicates", n, quiet, DUPLICATES),
        Scenario("bursts", n, quiet, bursts=bursts),
        Scenario("graph_api_failing", n, ramp(every[:1]), faults=every[:1]),
        *long_only,
        Scenario("graph_flapping", n, ramp(flapping), faults=flapping),
        Scenario("sigkill", n, ramp(sigkill), faults=sigkill),
        Scenario(
            "sigkill_in_flight",
            n,
            at + IN_FLIGHT_ROUNDS * (IN_FLIGHT + 2 * kill + 5) + tail,
            faults=in_flight,
        ),
        Scenario("postgres_down", n, ramp(postgres), faults=postgres),
        Scenario("all_together", n, ramp(every), DUPLICATES, bursts=bursts, faults=every),
    ]


async def run(
    system: System,
    scenario: Scenario,
    index: int,
    rng: random.Random,
    engine: Engine,
    *,
    limit: float,
    drain_limit: float,
) -> Outcome:
    """Drive the scenario's customers with its faults, let the system drain, check invariants."""
    customers = make_customers(f"4915{index:02d}", scenario.customers, scenario.bursts, rng)
    started = time.monotonic()
    driver = Driver(system.webhook_urls, scenario.delivery, rng, deadline=started + limit)
    dropped_before = system.proxy.dropped
    injector = asyncio.create_task(_inject(system, scenario.faults, started))
    await driver.run(customers, scenario.ramp)
    windows = await injector
    quiet = time.monotonic()
    keys = {c.key for c in customers}
    loop = asyncio.get_running_loop()
    while time.monotonic() - quiet < drain_limit:
        if (
            await loop.run_in_executor(None, pending_replies, engine, keys) == 0
            and (await loop.run_in_executor(None, armed_timers, engine, keys) == 0)
            and await loop.run_in_executor(None, pending_calls, engine, keys) == 0
        ):
            break
        await asyncio.sleep(0.5)
    drain = time.monotonic() - quiet
    await asyncio.sleep(1.5)  # a send whose ack is in flight
    record = await loop.run_in_executor(None, system.graph_requests)
    numbers = {c.number for c in customers}
    mine = [r for r in record if isinstance(r["body"], dict) and r["body"].get("to") in numbers]
    failed = sum(1 for r in mine if r["kind"] == "message" and r["status"] != 200)
    logs = scan({s.name: s.log for s in system.gateways})
    findings = await loop.run_in_executor(
        None,
        check,
        engine,
        {c.key: c.expected_results for c in customers},
        driver.driven,
        mine,
        Ambiguity(
            logs.ambiguous_ids,
            logs.wa_ids,
            [w.start for w in windows if w.kind == "kill_gateway"]
            + [kill for w in windows for _, kill in w.held],
        ),
        {c.key: dict(TIMER_STAGES) for c in customers if c.kind == "silent" and not c.burst},
        {c.key for c in customers if c.kind == "booking" and not c.burst},
    )
    await loop.run_in_executor(None, _watched, system, engine, keys, findings)
    accepted = sorted(r["at"] for r in mine if r["kind"] == "message" and r["status"] == 200)
    held = [span for w in windows for span in w.held]
    in_flight = sum(1 for at in accepted if any(start <= at <= kill for start, kill in held))
    return Outcome(
        scenario,
        driver.tally,
        findings,
        windows,
        _recovery(windows, driver.tally.ok_times, accepted),
        drain,
        failed + system.proxy.dropped - dropped_before,
        crashed=[s.name for s in system.services if not s.alive()],
        in_flight=in_flight,
    )


def _watched(system: System, engine: Engine, keys: set[Any], findings: Findings) -> None:
    """Every committed completion of the scenario's customers reached every watcher and the
    webhook endpoint (waiting up to 30 s for each to catch up), and nothing else did."""
    committed = committed_completions(engine, keys)
    expected = {(key, ref) for key, refs in committed.items() for ref in refs}
    for watcher in system.watchers:
        deadline = time.monotonic() + 30
        while True:
            seen = {(k, r) for k, refs in watcher.references().items() if k in keys for r in refs}
            if expected <= seen or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        missing, extra = expected - seen, seen - expected
        findings.events_missing += len(missing)
        findings.events_extra += len(extra)
        findings.event_deliveries = max(findings.event_deliveries, watcher.deliveries)
        if missing or extra:
            findings.notes.append(
                f"watcher {watcher.target}: {len(missing)} completions missing, "
                f"{len(extra)} extra ({watcher.reconnects} reconnects)"
            )
    deadline = time.monotonic() + 30
    while True:
        posted = {(k, r) for k, refs in system.hook.references().items() if k in keys for r in refs}
        if expected <= posted or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing, extra = expected - posted, posted - expected
    findings.hook_missing, findings.hook_extra = len(missing), len(extra)
    findings.hook_deliveries = sum(1 for _, key, _ in system.hook.deliveries() if key in keys)
    findings.bad_signatures = system.hook.bad_signatures()
    if missing or extra:
        findings.notes.append(
            f"webhook endpoint: {len(missing)} completions missing, {len(extra)} extra"
        )


async def _inject(system: System, faults: tuple[Fault, ...], started: float) -> list[Window]:
    return list(await asyncio.gather(*(_fault(system, f, started) for f in faults)))


async def _fault(system: System, fault: Fault, started: float) -> Window:
    await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
    loop = asyncio.get_running_loop()
    window = Window(fault.kind, time.time())
    if fault.kind == "graph":
        for phase, share in GRAPH_PHASES:
            seconds = fault.seconds * share
            if phase == "drop":
                system.proxy.dropping = True
            elif phase == "503":
                system.fail_graph(kind="error", status=503, seconds=seconds)
            else:
                system.fail_graph(kind="error", code=int(phase), seconds=seconds)
            await asyncio.sleep(seconds)
            system.heal_graph()
        window.detail = "+".join(p for p, _ in GRAPH_PHASES)
    elif fault.kind == "graph_outage":
        await loop.run_in_executor(None, lambda: system.fail_graph(**OUTAGE))
        window.detail = "HTTP 500 131000, messages and read receipts"
        await asyncio.sleep(fault.seconds)
        await loop.run_in_executor(None, system.heal_graph)
    elif fault.kind == "graph_flapping":
        flap = {"down": FLAPPING_DOWN, "up": FLAPPING_UP}
        await loop.run_in_executor(None, lambda: system.fail_graph(**OUTAGE, **flap))
        window.detail = f"HTTP 500 131000 for {FLAPPING_DOWN:g} s, up {FLAPPING_UP:g} s, again"
        await asyncio.sleep(fault.seconds)
        await loop.run_in_executor(None, system.heal_graph)
    elif fault.kind in ("kill_gateway", "kill_flowsvc"):
        group = system.gateways if fault.kind == "kill_gateway" else system.flowsvcs
        victim = min(group, key=lambda s: s.starts)  # take turns across scenarios
        victim.kill()
        window.detail = f"SIGKILL {victim.name}"
        await asyncio.sleep(fault.seconds)
        await loop.run_in_executor(None, victim.start)
        if victim.failed_starts:
            window.detail += f", {len(victim.failed_starts)} failed restarts so far"
    elif fault.kind == "kill_in_flight":
        # Every gateway dies with sends in flight, Meta accepts them all after their senders died.
        for _ in range(IN_FLIGHT_ROUNDS):
            held = time.time()
            system.fail_graph(kind="slow", delay=IN_FLIGHT + 1.0, seconds=IN_FLIGHT)
            await asyncio.sleep(IN_FLIGHT)
            for gateway in system.gateways:
                gateway.kill()
            window.held.append((held, time.time()))
            await asyncio.sleep(fault.seconds)
            system.heal_graph()
            await asyncio.gather(
                *(loop.run_in_executor(None, gateway.start) for gateway in system.gateways)
            )
            await asyncio.sleep(fault.seconds)
        names = ", ".join(g.name for g in system.gateways)
        window.detail = f"{IN_FLIGHT_ROUNDS} x SIGKILL {names} with sends in flight"
    elif fault.kind == "postgres":
        await loop.run_in_executor(None, system.postgres.stop, "immediate")
        window.detail = "pg_ctl stop -m immediate"
        await asyncio.sleep(fault.seconds)
        await loop.run_in_executor(None, system.postgres.start)
    window.end = time.time()
    return window


def _recovery(windows: list[Window], inbound: list[float], outbound: list[float]) -> float | None:
    """The longest time from a fault's end until a webhook got a 200 and the Graph API accepted
    a message again (whichever came later; only the one seen when the other had no traffic)."""
    worst: float | None = None
    for window in windows:
        after = [
            min((t for t in times if t >= window.end), default=None)
            for times in (inbound, outbound)
        ]
        seen = [t for t in after if t is not None]
        if not seen:
            continue
        recovery = max(seen) - window.end
        window.recovery = recovery
        worst = recovery if worst is None else max(worst, recovery)
    return worst
