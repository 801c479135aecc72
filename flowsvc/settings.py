"""flowsvc's settings: read once from the environment, frozen, failing fast on bad values."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from flowsvc.engine.wording import BUILT_IN, TextSet, read_country_rules, read_text_sets
from flowsvc.rpc.roles import ROLES
from menuflow.environment import SettingsError, config, non_negative, optional, words

__all__ = ["Settings", "SettingsError"]


def role_tokens(raw: object) -> tuple[tuple[str, str], ...]:
    """FLOWSVC_TOKENS: "role:token" pairs, comma-separated: "client:abc,gateway:def"."""
    pairs = []
    for item in str(raw).split(","):
        if not item.strip():
            continue
        role, colon, token = item.strip().partition(":")
        if not colon or role not in ROLES or not token.strip():
            raise ValueError(
                f"FLOWSVC_TOKENS: an entry is not 'role:token' with a role among {', '.join(ROLES)}"
            )
        pairs.append((role, token.strip()))
    return tuple(pairs)


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


def text_sets(path: str | None) -> dict[str, TextSet]:
    """FLOWSVC_TEXT_SETS: a JSON file of menuflow's words by language, over the built-in ones
    (wording.read_text_sets)."""
    if path is None:
        return dict(BUILT_IN)
    try:
        with open(path, encoding="utf-8") as file:
            raw = json.load(file)
    except (OSError, ValueError) as error:
        raise ValueError(f"FLOWSVC_TEXT_SETS={path}: cannot read it as JSON ({error})") from None
    try:
        return read_text_sets(raw)
    except ValueError as error:
        raise ValueError(f"FLOWSVC_TEXT_SETS={path}: {error}") from None


@dataclass(frozen=True)
class Settings:
    """Everything flowsvc can be configured with; see the README's configuration table."""

    database_url: str = "sqlite:///menuflow.db"
    listen: str = "127.0.0.1:50051"
    grace_seconds: float = 10.0
    worker_threads: int = 8
    db_pool_size: int = 8
    db_prepared_statements: bool = True
    default_template: str | None = "main_menu"
    conversation_ttl: timedelta = timedelta(hours=24)
    dedupe_retention: timedelta = timedelta(days=8)
    expiry_notice: timedelta = timedelta(days=7)
    sweep_interval_seconds: float = 300.0
    # How often each replica fires the step timers that are due (a timer fires at most this
    # late, while flowsvc runs); 0: never on its own (SweepExpired still does).
    timer_interval_seconds: float = 1.0
    max_context_bytes: int = 16_384
    max_request_bytes: int = 8 * 1024 * 1024  # a larger gRPC request is refused whole
    cancel_words: frozenset[str] = frozenset({"cancel", "exit", "quit"})
    menu_words: frozenset[str] = frozenset({"menu", "restart"})
    back_words: frozenset[str] = frozenset({"back"})
    log_level: str = "INFO"
    auth_token: str | None = field(default=None, repr=False)  # FLOWSVC_TOKEN: an admin's
    tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # (role, token) pairs
    allow_unauthenticated: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    retention: timedelta | None = timedelta(days=90)
    maybe_sent_grace: timedelta = timedelta(seconds=5)
    event_retention: timedelta | None = timedelta(days=7)
    event_max_watchers: int = 100
    event_poll_seconds: float = 0.5
    # At most one read of new events, and so one response per stream, per this many ms
    event_batch_ms: int = 25
    handoff_idle: timedelta | None = timedelta(hours=4)
    handoff_resume_text: str = "Our team will get back to you; meanwhile, here is the menu."
    handoff_leave_words: frozenset[str] = frozenset()
    handoff_default_queue: str = "support"
    metrics_listen: str | None = None  # host:port of /metrics; None: no metrics endpoint
    # menuflow's own words by language (Spanish built in; FLOWSVC_TEXT_SETS adds and rewords)
    text_sets: Mapping[str, TextSet] = field(default_factory=lambda: dict(BUILT_IN))
    # calling code -> language, for customers who chose none (FLOWSVC_LANGUAGES_BY_COUNTRY)
    languages_by_country: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.metrics_listen is not None:
            host, colon, port = self.metrics_listen.rpartition(":")
            if not (colon and port.isdigit() and int(port) < 65536):
                raise SettingsError(
                    f"FLOWSVC_METRICS_LISTEN={self.metrics_listen} is not host:port "
                    "(e.g. 127.0.0.1:9464; 0.0.0.0:9464 for a scraper on another machine)"
                )
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
                "no token is set (FLOWSVC_TOKEN, FLOWSVC_TOKENS), so anyone who can reach the port "
                "could call FlowService: set FLOWSVC_TOKEN (an admin's) and give the gateway a "
                "gateway token of FLOWSVC_TOKENS, or "
                "require client certificates with FLOWSVC_TLS_CLIENT_CA, or listen on "
                "127.0.0.1, or set FLOWSVC_ALLOW_UNAUTHENTICATED=1 if the network already "
                "keeps everyone else out"
            )
        secrets = [token for _, token in self.role_tokens]
        if len(set(secrets)) != len(secrets):
            raise SettingsError(
                "FLOWSVC_TOKEN and FLOWSVC_TOKENS hold the same token twice: each token names "
                "one role, so give each caller its own"
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
    def role_tokens(self) -> tuple[tuple[str, str], ...]:
        """Every token flowsvc accepts, with its role: FLOWSVC_TOKEN is an admin's."""
        admin = (("admin", self.auth_token),) if self.auth_token else ()
        return admin + self.tokens

    @property
    def authenticates_callers(self) -> bool:
        """Whether a caller must prove who it is: a bearer token, or a client certificate."""
        return bool(self.role_tokens or self.tls_client_ca)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = config(environ)
        d = cls()
        seconds, count = non_negative(float), non_negative(int)
        try:
            retention_days = env("FLOWSVC_RETENTION_DAYS", cast=seconds, default=90.0)
            event_days = env("FLOWSVC_EVENT_RETENTION_DAYS", cast=seconds, default=7.0)
            idle_minutes = env("FLOWSVC_HANDOFF_IDLE_MINUTES", cast=seconds, default=240.0)
            return cls(
                database_url=env("DATABASE_URL", default=d.database_url) or d.database_url,
                listen=env("FLOWSVC_LISTEN", default=d.listen) or d.listen,
                grace_seconds=env("FLOWSVC_GRACE_SECONDS", cast=seconds, default=d.grace_seconds),
                worker_threads=env("FLOWSVC_WORKER_THREADS", cast=count, default=d.worker_threads),
                db_pool_size=env("FLOWSVC_DB_POOL_SIZE", cast=count, default=d.db_pool_size),
                db_prepared_statements=env(
                    "FLOWSVC_DB_PREPARED_STATEMENTS", cast=bool, default=d.db_prepared_statements
                ),
                default_template=env(
                    "FLOWSVC_DEFAULT_TEMPLATE", cast=optional, default=d.default_template
                ),
                conversation_ttl=timedelta(
                    hours=env("FLOWSVC_CONVERSATION_TTL_HOURS", cast=seconds, default=24.0)
                ),
                dedupe_retention=timedelta(
                    hours=env("FLOWSVC_DEDUPE_RETENTION_HOURS", cast=seconds, default=192.0)
                ),
                expiry_notice=timedelta(
                    days=env("FLOWSVC_EXPIRY_NOTICE_DAYS", cast=seconds, default=7.0)
                ),
                sweep_interval_seconds=env(
                    "FLOWSVC_SWEEP_INTERVAL_SECONDS", cast=seconds, default=d.sweep_interval_seconds
                ),
                timer_interval_seconds=env(
                    "FLOWSVC_TIMER_INTERVAL_SECONDS", cast=seconds, default=d.timer_interval_seconds
                ),
                max_request_bytes=env(
                    "FLOWSVC_MAX_REQUEST_BYTES", cast=count, default=d.max_request_bytes
                ),
                max_context_bytes=env(
                    "FLOWSVC_MAX_CONTEXT_BYTES", cast=count, default=d.max_context_bytes
                ),
                cancel_words=env("FLOWSVC_CANCEL_WORDS", cast=words, default="cancel,exit,quit"),
                menu_words=env("FLOWSVC_MENU_WORDS", cast=words, default="menu,restart"),
                back_words=env("FLOWSVC_BACK_WORDS", cast=words, default="back"),
                log_level=env("LOG_LEVEL", default=d.log_level).upper() or d.log_level,
                auth_token=env("FLOWSVC_TOKEN", cast=optional, default=None),
                tokens=env("FLOWSVC_TOKENS", cast=role_tokens, default=""),
                allow_unauthenticated=env(
                    "FLOWSVC_ALLOW_UNAUTHENTICATED", cast=bool, default=False
                ),
                tls_cert=env("FLOWSVC_TLS_CERT", cast=optional, default=None),
                tls_key=env("FLOWSVC_TLS_KEY", cast=optional, default=None),
                tls_client_ca=env("FLOWSVC_TLS_CLIENT_CA", cast=optional, default=None),
                retention=timedelta(days=retention_days) if retention_days else None,
                maybe_sent_grace=timedelta(
                    seconds=env("FLOWSVC_MAYBE_SENT_GRACE_SECONDS", cast=seconds, default=5.0)
                ),
                event_retention=timedelta(days=event_days) if event_days else None,
                event_max_watchers=env(
                    "FLOWSVC_EVENT_MAX_WATCHERS", cast=count, default=d.event_max_watchers
                ),
                event_poll_seconds=env(
                    "FLOWSVC_EVENT_POLL_SECONDS", cast=seconds, default=d.event_poll_seconds
                ),
                event_batch_ms=env("FLOWSVC_EVENT_BATCH_MS", cast=count, default=d.event_batch_ms),
                handoff_idle=timedelta(minutes=idle_minutes) if idle_minutes else None,
                handoff_resume_text=env(
                    "FLOWSVC_HANDOFF_RESUME_TEXT", default=d.handoff_resume_text
                )
                or d.handoff_resume_text,
                handoff_leave_words=env("FLOWSVC_HANDOFF_LEAVE_WORDS", cast=words, default=""),
                handoff_default_queue=env(
                    "FLOWSVC_HANDOFF_DEFAULT_QUEUE", default=d.handoff_default_queue
                )
                or d.handoff_default_queue,
                metrics_listen=env("FLOWSVC_METRICS_LISTEN", cast=optional, default=None),
                text_sets=text_sets(env("FLOWSVC_TEXT_SETS", cast=optional, default=None)),
                languages_by_country=read_country_rules(
                    env("FLOWSVC_LANGUAGES_BY_COUNTRY", default="")
                ),
            )
        except (KeyError, ValueError) as error:
            raise SettingsError(str(error).strip("'\"")) from None
