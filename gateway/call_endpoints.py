"""The business's HTTP APIs that call steps may call: read from CALL_ENDPOINTS (JSON), each with
its base URL, plain headers, headers whose values are secrets read from environment variables
named here (never written in a template or in this setting), whether it is idempotent, and how
many times an idempotent call may be retried.

CALL_ENDPOINTS='[{"name": "address_check", "url": "https://api.shop.example/v1",
                  "headers": {"X-Client": "menuflow"},
                  "secret_headers": {"Authorization": "SHOP_API_AUTHORIZATION"},
                  "idempotent": true, "retries": 2}]'

A template's call names the endpoint and gives only the path and body. Plain http is refused
except to a loopback address (a service on the same host, e.g. the dev stand-in).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.endpoint_list import Entry, read_entries
from menuflow.environment import SettingsError

_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_KEYS = {"name", "url", "headers", "secret_headers", "idempotent", "retries"}
MAX_RETRIES = 5


@dataclass(frozen=True)
class CallEndpoint:
    """One endpoint: where its calls go, with which headers, retried or not."""

    name: str
    url: str  # the base URL; a call's path is added to it
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # secrets included
    idempotent: bool = False  # a call may be sent again (after a failure, or a lost result)
    retries: int = 2  # idempotent only: further tries after a failure or a 5xx

    def url_for(self, path: str) -> str:
        return self.url.rstrip("/") + "/" + path.lstrip("/")


def parse(raw: str, environ: Mapping[str, str]) -> tuple[CallEndpoint, ...]:
    """CALL_ENDPOINTS' endpoints, their secret headers read from `environ`; SettingsError
    naming the problem otherwise."""
    entries = read_entries("CALL_ENDPOINTS", raw, _KEYS, max_name=64)
    return tuple(_endpoint(entry, environ) for entry in entries)


def _endpoint(entry: Entry, environ: Mapping[str, str]) -> CallEndpoint:
    where, item = entry.where, entry.item
    headers = _headers(item.get("headers", {}), f"{where}.headers")
    for header, variable in _headers(
        item.get("secret_headers", {}), f"{where}.secret_headers"
    ).items():
        secret = environ.get(variable, "")
        if not secret:
            raise SettingsError(
                f"{where}.secret_headers.{header}: the variable {variable} is not set"
            )
        headers[header] = secret
    idempotent = item.get("idempotent", False)
    if not isinstance(idempotent, bool):
        raise SettingsError(f"{where}.idempotent: true or false")
    retries = item.get("retries", 2)
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        raise SettingsError(f"{where}.retries: from 0 to {MAX_RETRIES}")
    return CallEndpoint(
        name=entry.name, url=entry.url, headers=headers, idempotent=idempotent, retries=retries
    )


def _headers(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: an object of header name -> value")
    for key, value in raw.items():
        if not _HEADER.fullmatch(str(key)) or not isinstance(value, str):
            raise SettingsError(f"{where}.{key}: a header name and a string value")
    return {str(k): str(v) for k, v in raw.items()}
