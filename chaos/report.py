"""The suite's one table, and the details behind any nonzero figure."""

from __future__ import annotations

from chaos.logs import LogScan
from chaos.scenarios import Outcome

COLUMNS = (
    "scenario",
    "messages driven",
    "duplicates injected",
    "faults injected",
    "lost",
    "sent twice",
    "crashed in flight",
    "out of order",
    "max recovery",
    "ambiguous twice",
    "completions watched (missing / extra)",
    "completions posted (missing / extra)",
    "drain",
)


def row(outcome: Outcome) -> tuple[str, ...]:
    f = outcome.findings
    faults = len(outcome.windows)
    recovery = "-" if outcome.recovery is None else f"{outcome.recovery:.1f} s"
    return (
        outcome.scenario.name,
        str(outcome.tally.messages),
        str(outcome.tally.duplicates),
        f"{faults} ({outcome.failed_requests} sends failed)"
        if outcome.failed_requests
        else str(faults),
        str(f.lost + f.inbound_missing),
        str(f.sent_twice),
        str(outcome.in_flight) if outcome.in_flight else "-",
        str(f.out_of_order),
        recovery,
        str(f.ambiguous_twice),
        f"{f.event_deliveries} ({f.events_missing} / {f.events_extra})",
        f"{f.hook_deliveries} ({f.hook_missing} / {f.hook_extra})",
        f"{outcome.drain:.1f} s",
    )


def table(outcomes: list[Outcome]) -> str:
    rows = [COLUMNS, *(row(o) for o in outcomes)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = []
    for n, r in enumerate(rows):
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def details(
    outcomes: list[Outcome],
    logs: LogScan,
    exits: dict[str, list[int]],
    failed_starts: dict[str, list[str]],
) -> list[str]:
    """One line per fact worth reading; problems first."""
    lines = []
    for o in outcomes:
        f, t = o.findings, o.tally
        name = o.scenario.name
        lines.append(
            f"{name}: {t.posts} posts, {t.redeliveries} redeliveries, non-200: "
            f"{dict(sorted(t.refused.items())) or 'none'}, undelivered payloads: {t.undelivered}; "
            f"replies pending {f.pending}, failed {f.failed}; "
            f"{f.conversations} open conversations checked for a way on; "
            f"{f.handed_off} messages of handed-off customers checked; "
            f"{f.timers_fired} timers fired; {f.calls_continued} call results continued a flow"
        )
        for w in o.windows:
            back = "no traffic after it" if w.recovery is None else f"{w.recovery:.1f} s"
            lines.append(f"  fault {w.kind} ({w.detail}): {w.end - w.start:.1f} s, recovery {back}")
        problems = {
            "inbound never processed": f.inbound_missing,
            "processed but never driven": f.inbound_unexpected,
            "double effects": f.double_effects,
            "replies lost": f.lost,
            "accepted but never committed": f.phantom,
            "wrong stored results": f.wrong_results,
            "handed-off messages the bot answered": f.bot_answered_handed_off,
            "handed-off messages not emitted once as customer_message": f.handed_off_unseen,
            "stuck conversations": len(f.stuck),
            "event webhook POSTs with a bad signature": f.bad_signatures,
            "silent customers whose timers did not fire once each": f.timers_wrong,
            "calls whose result did not continue the flow exactly once": f.calls_wrong,
        }
        for label, count in problems.items():
            if count:
                lines.append(f"  FAIL {label}: {count}")
        if t.undelivered:
            lines.append(f"  FAIL payloads never accepted before the deadline: {t.undelivered}")
        for note in f.notes[:15]:
            lines.append(f"  - {note}")
        for where in f.stuck[:10]:
            lines.append(f"  - stuck: {where}")
        if o.crashed:
            lines.append(f"  FAIL not running at the end: {', '.join(o.crashed)}")
    for service, found in sorted(logs.tracebacks.items()):
        lines.append(f"FAIL {service}: {len(found)} unhandled exceptions in its log")
        lines += [f"  - {x}" for x in found[:8]]
    for service, found in sorted(logs.outage_tracebacks.items()):
        lines.append(
            f"KNOWN BUG {service}: {len(found)} tracebacks of database errors logged while "
            "PostgreSQL was down (reported; --strict fails on them)"
        )
        lines += [f"  - {x}" for x in found[:2]]
    for service, count in sorted(logs.errors.items()):
        lines.append(f"{service}: {count} error-level log lines")
    for service, failures in sorted(failed_starts.items()):
        if failures:
            lines.append(
                f"KNOWN BUG {service}: {len(failures)} starts exited instead of waiting for "
                "the database (restarted by the harness as a supervisor would; --strict fails)"
            )
            lines += [f"  - {x}" for x in failures[:3]]
    for service, codes in sorted(exits.items()):
        lines.append(f"{service}: exit codes seen {codes}")
    return lines
