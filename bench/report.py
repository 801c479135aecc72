"""`make bench`'s one table: the end-to-end figures, each next to the same run's bare ceiling."""

from __future__ import annotations

import argparse
from typing import Any

META_CEILING = 1000  # messages/s Meta allows one business number


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def render(
    args: argparse.Namespace,
    result: dict[str, Any],
    figures: dict[str, Any],
    ceilings: dict[str, Any],
) -> str:
    answered = max(figures["answered"], 1)
    per_1000 = 1000 / answered
    webhook = ceilings.get("webhook")
    echo = ceilings.get("echo")
    pgbench = ceilings.get("pgbench")
    lines = [
        "",
        f"menuflow end to end on PostgreSQL: {args.customers} customers walking the order flow, "
        f"offered {args.rate:g} msg/s for {args.seconds:g} s "
        f"({result['processes']['gateway']} gateway process(es): GATEWAY_WORKERS "
        f"{args.gateway_workers or 'default'}, GATEWAY_CONCURRENCY "
        f"{args.gateway_concurrency or 'default'}; {result['processes']['flowsvc']} flowsvc "
        "process(es))",
        "",
        f"  {'inbound messages/s sustained':<40}{figures['per_second']:>10.0f}"
        f"   ({figures['per_second'] / META_CEILING:.2f} of Meta's {META_CEILING}/s per number)",
        f"  {'webhooks posted / answered 200':<40}{figures['messages']:>10} / {figures['answered']}"
        f"   (first try: {figures['first_try']}; retried after non-200: "
        f"{result['run']['retries']})",
        f"  {'webhook answer p50 / p99':<40}{_ms(figures['webhook_p50']):>10} / "
        f"{_ms(figures['webhook_p99'])}"
        + (f"   (bare endpoint: {_ms(webhook['p50'])} / {_ms(webhook['p99'])})" if webhook else ""),
        f"  {'send latency p50 / p99':<40}{_ms(figures['send_p50']):>10} / "
        f"{_ms(figures['send_p99'])}   (webhook posted -> stand-in got the last reply to it)",
        f"  {'replies received / expected':<40}{figures['replies']:>10} / "
        f"{result['expected_replies']}   (missing {figures['missing']}, "
        f"beyond expected {figures['extra']}, refused by the stand-in "
        f"{figures['rejected_sends']})",
        f"  {'mark-as-read received':<40}{figures['reads']:>10}"
        f"   (messages left unread: {figures['reads_missing']}; a receipt marks earlier ones)",
        f"  {'post behind schedule p99':<40}{_ms(figures['lag_p99']):>10}"
        f"   (drain after the load: {result['drained_seconds']:.1f} s)",
        "",
    ]
    tx = result["transactions"] / answered
    lines.append(
        f"  {'transactions per message':<40}{tx:>10.2f}"
        "   (pg_stat_database xact_commit delta: HandleMessage + AckOutbox + ClaimOutbox)"
    )
    if result["statements"] is not None:
        lines.append(
            f"  {'SQL statements per message':<40}{result['statements'] / answered:>10.2f}"
            f"   (every statement flowsvc ran, all RPCs; commits "
            f"{result['flowsvc_commits'] / answered:.2f}/msg)"
        )
    watchers = result.get("watchers")
    if watchers and watchers["p50"] is not None:
        lines.append(
            f"  {'event latency p50 / p99 (watchers)':<40}{_ms(watchers['p50']):>10} / "
            f"{_ms(watchers['p99'])}   (commit -> each of {watchers['streams']} WatchEvents "
            f"streams; {watchers['events']} deliveries of {watchers['distinct']} events in "
            f"{watchers.get('responses', '?')} responses, max {_ms(watchers['max'])})"
        )
    walk = args.walk
    lines.append(
        f"  {'HandleMessage statements by step':<40}"
        + " / ".join(f"{w['statements']:.0f}" for w in walk)
        + f"   (hi / New Order / Coffee / 2 / Yes, in-process; "
        f"{sum(w['commits'] for w in walk) / len(walk):.0f} transaction each)"
    )
    lines += [
        "",
        f"  {'process':<24}{'count':>6}{'CPU s / 1k msgs':>17}{'share':>8}{'peak MiB':>10}",
    ]
    total = sum(result["cpu"].values())
    roles = ("driver", "gateway", "flowsvc", "postgresql", "graph stand-in", "watchers")
    for name in (role for role in roles if role in result["cpu"]):
        seconds = result["cpu"][name]
        peak = result["memory"].get(name)
        lines.append(
            f"  {name:<24}{result['processes'][name]:>6}{seconds * per_1000:>17.3f}"
            f"{seconds / total:>8.0%}" + (f"{peak:>10.0f}" if peak is not None else f"{'-':>10}")
        )
    others = result["busy"] - total
    lines.append(f"  {'all of the above':<24}{'':>6}{total * per_1000:>17.3f}")
    lines.append(
        f"  {'machine busy (2 cores)':<24}{'':>6}{result['busy'] * per_1000:>17.3f}"
        f"   (others on the box: {others:.1f} CPU s in {figures['window']:.0f} s)"
    )
    for name, series in result["resident"].items():
        lines.append(
            f"  {name + ' MiB, each tenth of the load':<40}"
            + " ".join(f"{mib:.0f}" for mib in series)
            + "   (resident, largest process)"
        )
    lines.append("")
    if webhook:
        lines.append(
            f"  {'bare uvicorn + signature':<40}{webhook['per_second']:>10.0f} req/s"
            f"   (64 connections; server {webhook['server_cpu_per_1000']:.3f}, driver "
            f"{webhook['driver_cpu_per_1000']:.3f} CPU s / 1k) -> ratio "
            f"{figures['per_second'] / webhook['per_second']:.2f}"
        )
    if echo:
        lines.append(
            f"  {'bare gRPC unary echo':<40}{echo['per_second']:>10.0f} calls/s"
            f"   (50 in flight; server {echo['server_cpu_per_1000']:.3f} CPU s / 1k) -> ratio "
            f"{figures['per_second'] / echo['per_second']:.2f}"
        )
    if pgbench:
        lines.append(
            f"  {'pgbench -N (8 clients)':<40}{pgbench:>10.0f} tx/s"
            f"   -> ratio messages/s : tx/s {figures['per_second'] / pgbench:.2f}"
        )
    return "\n".join(lines)
