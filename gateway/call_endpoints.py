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

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from menuflow.environment import SettingsError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
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
    if not raw.strip():
        return ()
    try:
        items = json.loads(raw)
    except ValueError as error:
        raise SettingsError(f"CALL_ENDPOINTS is not JSON: {error}") from None
    if not isinstance(items, list):
        raise SettingsError("CALL_ENDPOINTS must be a JSON list of endpoint objects")
    endpoints = tuple(_endpoint(n, item, environ) for n, item in enumerate(items))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise SettingsError(f"CALL_ENDPOINTS: endpoint names must be unique, got {names}")
    return endpoints


def _endpoint(n: int, item: Any, environ: Mapping[str, str]) -> CallEndpoint:
    where = f"CALL_ENDPOINTS[{n}]"
    if not isinstance(item, dict):
        raise SettingsError(f"{where} must be an object")
    unknown = set(item) - _KEYS
    if unknown:
        raise SettingsError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_KEYS)})")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SettingsError(f"{where}.name: required, letters, digits, _ . - (at most 64)")
    where = f"CALL_ENDPOINTS[{name}]"
    url = item.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"{where}.url: required, an https:// URL")
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise SettingsError(f"{where}.url: https only (plain http only to a loopback address)")
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
        name=name, url=str(url), headers=headers, idempotent=idempotent, retries=retries
    )


def _headers(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: an object of header name -> value")
    for key, value in raw.items():
        if not _HEADER.fullmatch(str(key)) or not isinstance(value, str):
            raise SettingsError(f"{where}.{key}: a header name and a string value")
    return {str(k): str(v) for k, v in raw.items()}
