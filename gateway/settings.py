"""The gateway's settings: read once from the environment, frozen, failing fast without secrets."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.call_endpoints import CallEndpoint, parse as parse_call_endpoints
from gateway.event_endpoints import Endpoint, parse
from menuflow.environment import SettingsError, config, optional, positive

__all__ = ["Settings", "SettingsError"]

MAX_CALL_SECONDS = 30.0  # the longest timeout a template's call may ask for
MAX_BATCH_SIZE = 100  # FlowService's limit on messages in one HandleMessages call
# FlowService refuses a request larger than 8 MiB whole; a batch stays well under it.
MAX_BATCH_BYTES = 4 * 1024 * 1024


def _default_gateway_id() -> str:
    # Unique per process: leases taken by a dead gateway must never look like ours after a restart.
    return f"gateway-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be configured with; see the README's gateway settings table."""

    app_secret: str = field(default="", repr=False)
    verify_token: str = field(default="", repr=False)
    access_token: str = field(default="", repr=False)
    dev_mode: bool = False
    listen_host: str = "127.0.0.1"
    port: int = 8080
    flowsvc_target: str = "127.0.0.1:50051"
    flowsvc_token: str | None = field(default=None, repr=False)
    flowsvc_timeout_seconds: float = 10.0
    flowsvc_channels: int = 1
    workers: int = 1
    flowsvc_tls_ca: str | None = None
    flowsvc_tls_cert: str | None = None
    flowsvc_tls_key: str | None = field(default=None, repr=False)
    graph_api_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v25.0"
    graph_timeout_seconds: float = 20.0
    max_body_bytes: int = 4 * 1024 * 1024
    max_header_bytes: int = 16 * 1024
    body_timeout_seconds: float = 10.0
    head_timeout_seconds: float = 5.0
    idle_timeout_seconds: float = 75.0  # longer than Meta's and most proxies' idle timeouts
    max_connections: int = 512
    max_updates: int = 1000
    send_rate_per_second: float = 80.0
    # Graph API requests in flight: the request rate (a reply and a read receipt per message) times
    # Meta's answer time.
    send_concurrency: int = 256
    mark_as_read: bool = True
    concurrency: int = 2
    batch_size: int = 100
    batch_max_bytes: int = 1024 * 1024
    outbox_poll_seconds: float = 1.0
    outbox_lease_seconds: int = 60
    outbox_claim_max: int = 100
    # A message not sent this long after it was queued fails as "deadline passed" (free-form
    # messages never wait past Meta's 24-hour window); transient failures are retried until then.
    send_deadline_seconds: float = 3600.0
    send_backoff_max_seconds: float = 30.0
    breaker_failures: int = 5
    breaker_cooldown_seconds: float = 2.0
    breaker_cooldown_max_seconds: float = 30.0
    shutdown_grace_seconds: float = 10.0
    gateway_id: str = field(default_factory=_default_gateway_id)
    event_endpoints: tuple[Endpoint, ...] = ()
    event_lease_seconds: int = 30
    event_timeout_seconds: float = 10.0
    event_retry_min_seconds: float = 0.5
    event_retry_max_seconds: float = 60.0
    event_wait_seconds: float = 1.0
    call_endpoints: tuple[CallEndpoint, ...] = ()
    call_poll_seconds: float = 0.5
    call_lease_seconds: int = 120
    call_concurrency: int = 32
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if self.batch_size > MAX_BATCH_SIZE:
            raise SettingsError(
                f"GATEWAY_BATCH_SIZE={self.batch_size} is too large: FlowService takes at most "
                f"{MAX_BATCH_SIZE} messages in one HandleMessages call"
            )
        if self.batch_max_bytes > MAX_BATCH_BYTES:
            raise SettingsError(
                f"GATEWAY_BATCH_MAX_BYTES={self.batch_max_bytes} is too large: FlowService refuses "
                f"a call over 8 MiB whole; at most {MAX_BATCH_BYTES}"
            )
        if self.outbox_lease_seconds < 2 * self.send_budget_seconds:
            raise SettingsError(
                f"OUTBOX_LEASE_SECONDS={self.outbox_lease_seconds} is too short: one send may take "
                f"{self.send_budget_seconds:g} s (from GRAPH_TIMEOUT_SECONDS), and a lease must "
                "last at least two of them"
            )
        if self.call_lease_seconds < 2 * MAX_CALL_SECONDS:
            raise SettingsError(
                f"CALL_LEASE_SECONDS={self.call_lease_seconds} is too short: a call may wait "
                f"{MAX_CALL_SECONDS:g} s for its endpoint, and a lease must last two of them"
            )
        if self.event_endpoints and self.event_lease_seconds < 2 * (
            self.event_timeout_seconds + self.event_wait_seconds
        ):
            raise SettingsError(
                f"EVENT_LEASE_SECONDS={self.event_lease_seconds} is too short: a lease must "
                "last at least two event POSTs (EVENT_TIMEOUT_SECONDS) and claims "
                "(EVENT_WAIT_SECONDS)"
            )
        if self.breaker_cooldown_max_seconds < self.breaker_cooldown_seconds:
            raise SettingsError(
                f"BREAKER_COOLDOWN_MAX_SECONDS={self.breaker_cooldown_max_seconds:g} is shorter "
                f"than BREAKER_COOLDOWN_SECONDS={self.breaker_cooldown_seconds:g}"
            )
        if bool(self.flowsvc_tls_cert) != bool(self.flowsvc_tls_key):
            raise SettingsError(
                "FLOWSVC_TLS_CLIENT_CERT and FLOWSVC_TLS_CLIENT_KEY go together: set both or none"
            )
        if self.flowsvc_tls_cert and not self.flowsvc_tls_ca:
            raise SettingsError(
                "a client certificate (FLOWSVC_TLS_CLIENT_CERT) needs FLOWSVC_TLS_CA"
            )
        if self.dev_mode:
            return
        for name, value in (
            ("META_APP_SECRET", self.app_secret),
            ("META_VERIFY_TOKEN", self.verify_token),
            ("META_ACCESS_TOKEN", self.access_token),
        ):
            if not value:
                raise SettingsError(
                    f"{name} is missing: the gateway refuses to start without it "
                    "(set GATEWAY_DEV_MODE=1 to run locally without Meta credentials)"
                )

    @property
    def listens_privately(self) -> bool:
        """Whether only this machine can reach the gateway (a loopback address)."""
        host = self.listen_host.removeprefix("[").removesuffix("]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def send_budget_seconds(self) -> float:
        """The longest a Graph API send may take: none starts closer than this to its lease end."""
        return self.graph_timeout_seconds + self.graph_connect_seconds + 1.0

    @property
    def graph_connect_seconds(self) -> float:
        return min(5.0, self.graph_timeout_seconds)

    @property
    def graph_base_url(self) -> str:
        return f"{self.graph_api_url.rstrip('/')}/{self.graph_api_version}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = config(environ)
        d = cls(dev_mode=True)
        number, count = positive(float), positive(int)

        def text(key: str, default: str) -> str:
            return str(env(key, default=default)) or default

        try:
            extra = {"gateway_id": env("GATEWAY_ID")} if env("GATEWAY_ID", default="") else {}
            return cls(
                app_secret=env("META_APP_SECRET", default=""),
                verify_token=env("META_VERIFY_TOKEN", default=""),
                access_token=env("META_ACCESS_TOKEN", default=""),
                dev_mode=env("GATEWAY_DEV_MODE", cast=bool, default=False),
                listen_host=text("GATEWAY_LISTEN_HOST", d.listen_host),
                port=env("GATEWAY_PORT", cast=count, default=d.port),
                flowsvc_target=text("FLOWSVC_TARGET", d.flowsvc_target),
                flowsvc_token=env("FLOWSVC_TOKEN", cast=optional, default=None),
                flowsvc_timeout_seconds=env(
                    "FLOWSVC_TIMEOUT_SECONDS", cast=number, default=d.flowsvc_timeout_seconds
                ),
                flowsvc_channels=env("FLOWSVC_CHANNELS", cast=count, default=d.flowsvc_channels),
                workers=env("GATEWAY_WORKERS", cast=count, default=d.workers),
                flowsvc_tls_ca=env("FLOWSVC_TLS_CA", cast=optional, default=None),
                flowsvc_tls_cert=env("FLOWSVC_TLS_CLIENT_CERT", cast=optional, default=None),
                flowsvc_tls_key=env("FLOWSVC_TLS_CLIENT_KEY", cast=optional, default=None),
                graph_api_url=text("GRAPH_API_URL", d.graph_api_url),
                graph_api_version=text("GRAPH_API_VERSION", d.graph_api_version),
                graph_timeout_seconds=env(
                    "GRAPH_TIMEOUT_SECONDS", cast=number, default=d.graph_timeout_seconds
                ),
                max_body_bytes=env("GATEWAY_MAX_BODY_BYTES", cast=count, default=d.max_body_bytes),
                max_header_bytes=env(
                    "GATEWAY_MAX_HEADER_BYTES", cast=count, default=d.max_header_bytes
                ),
                body_timeout_seconds=env(
                    "GATEWAY_BODY_TIMEOUT_SECONDS", cast=number, default=d.body_timeout_seconds
                ),
                head_timeout_seconds=env(
                    "GATEWAY_HEAD_TIMEOUT_SECONDS", cast=number, default=d.head_timeout_seconds
                ),
                idle_timeout_seconds=env(
                    "GATEWAY_IDLE_TIMEOUT_SECONDS", cast=number, default=d.idle_timeout_seconds
                ),
                max_connections=env(
                    "GATEWAY_MAX_CONNECTIONS", cast=count, default=d.max_connections
                ),
                max_updates=env("GATEWAY_MAX_UPDATES", cast=count, default=d.max_updates),
                send_rate_per_second=env(
                    "SEND_RATE_PER_SECOND", cast=number, default=d.send_rate_per_second
                ),
                send_concurrency=env("SEND_CONCURRENCY", cast=count, default=d.send_concurrency),
                mark_as_read=env("MARK_AS_READ", cast=bool, default=d.mark_as_read),
                concurrency=env("GATEWAY_CONCURRENCY", cast=count, default=d.concurrency),
                batch_size=env("GATEWAY_BATCH_SIZE", cast=count, default=d.batch_size),
                batch_max_bytes=env(
                    "GATEWAY_BATCH_MAX_BYTES", cast=count, default=d.batch_max_bytes
                ),
                outbox_poll_seconds=env(
                    "OUTBOX_POLL_SECONDS", cast=number, default=d.outbox_poll_seconds
                ),
                outbox_lease_seconds=env(
                    "OUTBOX_LEASE_SECONDS", cast=count, default=d.outbox_lease_seconds
                ),
                outbox_claim_max=env("OUTBOX_CLAIM_MAX", cast=count, default=d.outbox_claim_max),
                send_deadline_seconds=env(
                    "SEND_DEADLINE_SECONDS", cast=number, default=d.send_deadline_seconds
                ),
                send_backoff_max_seconds=env(
                    "SEND_BACKOFF_MAX_SECONDS", cast=number, default=d.send_backoff_max_seconds
                ),
                breaker_failures=env("BREAKER_FAILURES", cast=count, default=d.breaker_failures),
                breaker_cooldown_seconds=env(
                    "BREAKER_COOLDOWN_SECONDS", cast=number, default=d.breaker_cooldown_seconds
                ),
                breaker_cooldown_max_seconds=env(
                    "BREAKER_COOLDOWN_MAX_SECONDS",
                    cast=number,
                    default=d.breaker_cooldown_max_seconds,
                ),
                shutdown_grace_seconds=env(
                    "GATEWAY_SHUTDOWN_GRACE_SECONDS", cast=number, default=10.0
                ),
                log_level=text("LOG_LEVEL", d.log_level).upper(),
                event_endpoints=parse(
                    text("EVENT_ENDPOINTS", ""), os.environ if environ is None else environ
                ),
                event_lease_seconds=env(
                    "EVENT_LEASE_SECONDS", cast=count, default=d.event_lease_seconds
                ),
                event_timeout_seconds=env(
                    "EVENT_TIMEOUT_SECONDS", cast=number, default=d.event_timeout_seconds
                ),
                event_retry_min_seconds=env(
                    "EVENT_RETRY_MIN_SECONDS", cast=number, default=d.event_retry_min_seconds
                ),
                event_retry_max_seconds=env(
                    "EVENT_RETRY_MAX_SECONDS", cast=number, default=d.event_retry_max_seconds
                ),
                event_wait_seconds=env(
                    "EVENT_WAIT_SECONDS", cast=number, default=d.event_wait_seconds
                ),
                call_endpoints=parse_call_endpoints(
                    text("CALL_ENDPOINTS", ""), os.environ if environ is None else environ
                ),
                call_poll_seconds=env(
                    "CALL_POLL_SECONDS", cast=number, default=d.call_poll_seconds
                ),
                call_lease_seconds=env(
                    "CALL_LEASE_SECONDS", cast=count, default=d.call_lease_seconds
                ),
                call_concurrency=env("CALL_CONCURRENCY", cast=count, default=d.call_concurrency),
                **extra,
            )
        except (KeyError, ValueError) as error:
            raise SettingsError(str(error).strip("'\"")) from None
