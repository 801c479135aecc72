"""Webhook endpoints that receive menuflow's events: read from EVENT_ENDPOINTS (JSON), each with
its URL, the event types it wants, the environment variable holding its signing secret, and how
long an event may be retried before it is given up on (dead-lettered).

EVENT_ENDPOINTS='[{"name": "kitchen", "url": "https://kitchen.example/menuflow",
                   "secret_env": "KITCHEN_HOOK_SECRET", "types": ["flow_completed"]}]'

Plain http is refused except to a loopback address (a receiver on the same host).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from menuflow.environment import SettingsError
from menuflow.v1 import flow_pb2

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
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
    if not raw.strip():
        return ()
    try:
        items = json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"EVENT_ENDPOINTS is not JSON: {error}") from None
    if not isinstance(items, list):
        raise SettingsError("EVENT_ENDPOINTS must be a JSON list of endpoint objects")
    endpoints = tuple(_endpoint(n, item, environ) for n, item in enumerate(items))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise SettingsError(f"EVENT_ENDPOINTS: endpoint names must be unique, got {names}")
    return endpoints


def _endpoint(n: int, item: Any, environ: Mapping[str, str]) -> Endpoint:
    where = f"EVENT_ENDPOINTS[{n}]"
    if not isinstance(item, dict):
        raise SettingsError(f"{where} must be an object")
    unknown = set(item) - _KEYS
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError(f"{where}.name: required, letters, digits, _ . - (at most 128)")
    where = f"EVENT_ENDPOINTS[{name}]"
    url = item.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"{where}.url: required, an https:// URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise SettingsError(f"{where}.url: https only (plain http only to a loopback address)")
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
        name=name,
        url=str(url),
        secret=secret,
        secret_env=secret_env,
        types=wanted,
        deadline_seconds=float(deadline),
        from_oldest=start == "oldest",
        batch_max=batch_max,
    )
