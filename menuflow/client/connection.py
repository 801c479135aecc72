"""Where flowsvc is and how to reach it: address, token, TLS, deadline and retries."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc


@dataclass(frozen=True)
class Connection:
    """How a client reaches flowsvc.

    `timeout` is each call's deadline, its retries included. A call that finds flowsvc
    UNAVAILABLE (restarting, its database away for a moment) is tried again up to `retries`
    times, waiting `backoff` seconds doubled each time up to `max_backoff` (with jitter). Calls
    that change something carry a request id the client picks, so a retry never does it twice.
    """

    target: str = "127.0.0.1:50051"
    token: str | None = field(default=None, repr=False)
    business: str = ""  # the default phone_number_id (Meta's id of the business number)
    tls_ca: str | None = None  # PEM: reach flowsvc over TLS, trusting this CA
    tls_cert: str | None = None  # PEM: a client certificate, when flowsvc asks for one
    tls_key: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    retries: int = 4
    backoff: float = 0.1
    max_backoff: float = 2.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Connection:
        """MENUFLOW_TARGET, MENUFLOW_TOKEN, MENUFLOW_BUSINESS, MENUFLOW_TLS_CA,
        MENUFLOW_TLS_CERT, MENUFLOW_TLS_KEY, MENUFLOW_TIMEOUT; `overrides` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            "target": env.get("MENUFLOW_TARGET") or cls.target,
            "token": env.get("MENUFLOW_TOKEN") or None,
            "business": env.get("MENUFLOW_BUSINESS", ""),
            "tls_ca": env.get("MENUFLOW_TLS_CA") or None,
            "tls_cert": env.get("MENUFLOW_TLS_CERT") or None,
            "tls_key": env.get("MENUFLOW_TLS_KEY") or None,
        }
        if env.get("MENUFLOW_TIMEOUT"):
            values["timeout"] = float(env["MENUFLOW_TIMEOUT"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, or None for plaintext."""
        if not self.tls_ca:
            return None

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.tls_ca),
            private_key=read(self.tls_key),
            certificate_chain=read(self.tls_cert),
        )

    def delay(self, attempt: int) -> float:
        """How long to wait before retry number `attempt` (0-based): equal jitter."""
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)
