"""Webhook endpoints that receive menuflow's events: read from EVENT_ENDPOINTS (JSON), each with
its URL, the event types it wants, the environment variable holding its signing secret, and how
long an event may be retried before it is given up on (dead-lettered).

EVENT_ENDPOINTS='[{"name": "kitchen", "url": "https://kitchen.example/menuflow",
                   "secret_env": "KITCHEN_HOOK_SECRET", "types": ["flow_completed"]}]'

Plain http is refused except to a loopback address (a receiver on the same host).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.endpoint_list import Entry, read_entries
from menuflow.environment import SettingsError
from menuflow.v1 import flow_pb2

_KEYS = {"name", "url", "secret_env", "types", "deadline_seconds", "start", "batch_max"}
TYPES = frozenset(
    name.removeprefix("EVENT_TYPE_").lower()
    for name in flow_pb2.EventType.keys()
    if name != "EVENT_TYPE_UNSPECIFIED"
)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint: where events go, which, signed with what, and retried for how long."""

    name: str
    url: str
    secret: str = field(repr=False)
    secret_env: str = ""
    types: frozenset[str] = frozenset()  # empty: every type
    deadline_seconds: float = 3600.0  # from an event's commit; retries stop after it
    from_oldest: bool = False  # the first claim starts at the oldest kept event, not now
    batch_max: int = 100


def parse(raw: str, environ: Mapping[str, str]) -> tuple[Endpoint, ...]:
    """EVENT_ENDPOINTS' endpoints, their secrets read from `environ`; SettingsError naming the
    problem otherwise."""
    entries = read_entries("EVENT_ENDPOINTS", raw, _KEYS, max_name=128)
    return tuple(_endpoint(entry, environ) for entry in entries)


def _endpoint(entry: Entry, environ: Mapping[str, str]) -> Endpoint:
    where, item = entry.where, entry.item
    secret_env = item.get("secret_env")
    if not isinstance(secret_env, str) or not secret_env:
        raise SettingsError(f"{where}.secret_env: required, the environment variable's name")
    secret = environ.get(secret_env, "")
    if not secret:
        raise SettingsError(f"{where}: the signing secret's variable {secret_env} is not set")
    types = item.get("types", [])
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise SettingsError(f"{where}.types: a list of event type names")
    wanted = frozenset(t.lower().removeprefix("event_type_") for t in types)
    if wanted - TYPES:
        raise SettingsError(
            f"{where}.types: unknown {sorted(wanted - TYPES)} (known: {sorted(TYPES)})"
        )
    deadline = item.get("deadline_seconds", 3600)
    if not isinstance(deadline, int | float) or isinstance(deadline, bool) or deadline <= 0:
        raise SettingsError(f"{where}.deadline_seconds: a positive number")
    start = item.get("start", "now")
    if start not in ("now", "oldest"):
        raise SettingsError(f"{where}.start: now or oldest")
    batch_max = item.get("batch_max", 100)
    if not isinstance(batch_max, int) or isinstance(batch_max, bool) or not 1 <= batch_max <= 500:
        raise SettingsError(f"{where}.batch_max: from 1 to 500")
    return Endpoint(
        name=entry.name,
        url=entry.url,
        secret=secret,
        secret_env=secret_env,
        types=wanted,
        deadline_seconds=float(deadline),
        from_oldest=start == "oldest",
        batch_max=batch_max,
    )
