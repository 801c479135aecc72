"""flowsvc's settings: read once from the environment, frozen, failing fast on bad values."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


def _words(value: str) -> frozenset[str]:
    return frozenset(word.strip().casefold() for word in value.split(",") if word.strip())


def is_loopback(listen: str) -> bool:
    """Whether a gRPC listen address is reachable from this machine only (loopback or a unix
    socket). A host name other than localhost counts as reachable: we cannot know what it names."""
    if listen.startswith(("unix:", "unix-abstract:")):
        return True
    host = listen.rsplit(":", 1)[0] if ":" in listen else listen
    host = host.removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Settings:
    """Everything flowsvc can be configured with; see the README's configuration table."""

    database_url: str = "sqlite:///menuflow.db"
    listen: str = "127.0.0.1:50051"
    grace_seconds: float = 10.0
    worker_threads: int = 8
    db_pool_size: int = 8
    default_template: str | None = "main_menu"
    conversation_ttl: timedelta = timedelta(hours=24)
    dedupe_retention: timedelta = timedelta(days=8)
    sweep_interval_seconds: float = 300.0
    max_context_bytes: int = 16_384
    cancel_words: frozenset[str] = frozenset({"cancel", "exit", "quit"})
    menu_words: frozenset[str] = frozenset({"menu", "restart"})
    back_words: frozenset[str] = frozenset({"back"})
    log_level: str = "INFO"
    auth_token: str | None = field(default=None, repr=False)
    allow_unauthenticated: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    retention: timedelta | None = timedelta(days=90)

    def __post_init__(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("FLOWSVC_TLS_CERT and FLOWSVC_TLS_KEY must be set together")
        if self.tls_client_ca and not self.tls_cert:
            raise SettingsError(
                "FLOWSVC_TLS_CLIENT_CA needs FLOWSVC_TLS_CERT and FLOWSVC_TLS_KEY: client "
                "certificates are only asked for over TLS"
            )
        if not (self.listens_privately or self.authenticates_callers or self.allow_unauthenticated):
            raise SettingsError(
                f"FLOWSVC_LISTEN={self.listen} is reachable from other machines, and "
                "FLOWSVC_TOKEN is not set, so anyone who can reach the port could call "
                "FlowService: set FLOWSVC_TOKEN (and give the gateway the same value), or "
                "require client certificates with FLOWSVC_TLS_CLIENT_CA, or listen on "
                "127.0.0.1, or set FLOWSVC_ALLOW_UNAUTHENTICATED=1 if the network already "
                "keeps everyone else out"
            )
        if self.retention is not None and self.retention < self.dedupe_retention:
            days = self.retention / timedelta(days=1)
            hours = self.dedupe_retention / timedelta(hours=1)
            raise SettingsError(
                f"FLOWSVC_RETENTION_DAYS={days:g} is shorter than FLOWSVC_DEDUPE_RETENTION_HOURS="
                f"{hours:g}: a redelivered message must still find the replies it produced"
            )

    @property
    def listens_privately(self) -> bool:
        return is_loopback(self.listen)

    @property
    def authenticates_callers(self) -> bool:
        """Whether a caller must prove who it is: a bearer token, or a client certificate."""
        return bool(self.auth_token or self.tls_client_ca)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        defaults = cls()

        def number(key: str, default: float, kind: type = float) -> float:
            raw = env.get(key)
            if raw is None or raw == "":
                return default
            try:
                value = kind(raw)
            except ValueError:
                raise SettingsError(f"{key}={raw!r} is not a {kind.__name__}") from None
            if value < 0:
                raise SettingsError(f"{key}={raw!r} must not be negative")
            return value

        def flag(key: str) -> bool:
            raw = (env.get(key) or "").strip().lower()
            if raw in {"", "0", "false", "no", "off"}:
                return False
            if raw in {"1", "true", "yes", "on"}:
                return True
            raise SettingsError(f"{key}={raw!r} is not a boolean (use 1/0, true/false)")

        retention_days = number("FLOWSVC_RETENTION_DAYS", 90.0)
        default_template = env.get("FLOWSVC_DEFAULT_TEMPLATE", defaults.default_template or "")
        return cls(
            database_url=env.get("DATABASE_URL") or defaults.database_url,
            listen=env.get("FLOWSVC_LISTEN") or defaults.listen,
            grace_seconds=number("FLOWSVC_GRACE_SECONDS", defaults.grace_seconds),
            worker_threads=int(number("FLOWSVC_WORKER_THREADS", defaults.worker_threads, int)),
            db_pool_size=int(number("FLOWSVC_DB_POOL_SIZE", defaults.db_pool_size, int)),
            default_template=default_template or None,
            conversation_ttl=timedelta(
                hours=number("FLOWSVC_CONVERSATION_TTL_HOURS", 24.0),
            ),
            dedupe_retention=timedelta(hours=number("FLOWSVC_DEDUPE_RETENTION_HOURS", 192.0)),
            sweep_interval_seconds=number(
                "FLOWSVC_SWEEP_INTERVAL_SECONDS", defaults.sweep_interval_seconds
            ),
            max_context_bytes=int(
                number("FLOWSVC_MAX_CONTEXT_BYTES", defaults.max_context_bytes, int)
            ),
            cancel_words=_words(env["FLOWSVC_CANCEL_WORDS"])
            if env.get("FLOWSVC_CANCEL_WORDS")
            else defaults.cancel_words,
            menu_words=_words(env["FLOWSVC_MENU_WORDS"])
            if env.get("FLOWSVC_MENU_WORDS")
            else defaults.menu_words,
            back_words=_words(env["FLOWSVC_BACK_WORDS"])
            if env.get("FLOWSVC_BACK_WORDS")
            else defaults.back_words,
            log_level=(env.get("LOG_LEVEL") or defaults.log_level).upper(),
            auth_token=env.get("FLOWSVC_TOKEN") or None,
            allow_unauthenticated=flag("FLOWSVC_ALLOW_UNAUTHENTICATED"),
            tls_cert=env.get("FLOWSVC_TLS_CERT") or None,
            tls_key=env.get("FLOWSVC_TLS_KEY") or None,
            tls_client_ca=env.get("FLOWSVC_TLS_CLIENT_CA") or None,
            retention=timedelta(days=retention_days) if retention_days else None,
        )
