"""Reading the processes' logs: unhandled exceptions, and the sends gateways flagged ambiguous."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from chaos.processes import FAILED_START

# A traceback this long after PostgreSQL came back still counts as part of its outage.
OUTAGE_SLACK_SECONDS = 10.0


@dataclass
class LogScan:
    tracebacks: dict[str, list[str]] = field(default_factory=dict)  # service -> first lines
    # Tracebacks of database errors while PostgreSQL was down: a known, reported flowsvc bug
    # (it logs every call failed for an unreachable database with a traceback, at error level).
    outage_tracebacks: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # service -> error-level lines
    ambiguous_ids: set[int] = field(default_factory=set)  # outbox ids of ambiguous sends
    wa_ids: set[str] = field(default_factory=set)  # Meta message ids some gateway learned

    @property
    def traceback_count(self) -> int:
        return sum(len(v) for v in self.tracebacks.values())


def scan(logs: dict[str, Path], outages: list[tuple[float, float]] = ()) -> LogScan:
    """Every Traceback (raw, or a JSON line's `exception`) and error line, per service;
    `outages` are the (start, end) wall times PostgreSQL was down."""
    found = LogScan()
    for service, path in logs.items():
        if not path.exists():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        failed_start = _failed_start_lines(lines)
        for number, line in enumerate(lines, 1):
            event = _event(line)
            if event is None:
                if "Traceback (most recent call last)" in line and number not in failed_start:
                    tail = next((x for x in lines[number:] if x and not x.startswith(" ")), "")
                    found.tracebacks.setdefault(service, []).append(f"line {number}: {tail}")
                continue
            if event.get("exception"):
                lines_of = str(event["exception"]).strip().splitlines()
                last = next((x for x in reversed(lines_of) if x and not x.startswith(" ")), "")
                last = next((x for x in lines_of if "Error:" in x and not x.startswith(" ")), last)
                summary = f"line {number}: {event.get('event', '')}: {last}"
                kind = (
                    found.outage_tracebacks
                    if _during(event.get("ts"), outages) and "OperationalError" in last
                    else found.tracebacks
                )
                kind.setdefault(service, []).append(summary)
            if event.get("level") in ("error", "critical"):
                found.errors[service] = found.errors.get(service, 0) + 1
            if event.get("wa_id"):
                found.wa_ids.add(str(event["wa_id"]))
            if str(event.get("event", "")).startswith("send.") and event.get("ambiguous"):
                outbox_id = event.get("outbox_id")
                if isinstance(outbox_id, int):
                    found.ambiguous_ids.add(outbox_id)
    return found


def _failed_start_lines(lines: list[str]) -> set[int]:
    """Line numbers of the output of starts that failed (reported as failed starts instead)."""
    found: set[int] = set()
    begun = 0
    for number, line in enumerate(lines, 1):
        if line.startswith("=== chaos: start #"):
            begun = number
        elif line.startswith(FAILED_START):
            found.update(range(begun, number + 1))
    return found


def _during(ts: object, outages: list[tuple[float, float]]) -> bool:
    try:
        moment = datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return False
    return any(start <= moment <= end + OUTAGE_SLACK_SECONDS for start, end in outages)


def _event(line: str) -> dict[str, object] | None:
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
