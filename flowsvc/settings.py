"""flowsvc's settings: read once from the environment, frozen, failing fast on bad values."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta


class SettingsError(ValueError):
    """An environment variable is missing or malformed."""


def _words(value: str) -> frozenset[str]:
    return frozenset(word.strip().casefold() for word in value.split(",") if word.strip())


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
        )
