"""How the local tools (`make chat`, `make run`) reach flowsvc: the address, token and TLS files
the gateway reads, from the same environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_LISTEN = "127.0.0.1:50051"


def local_target(listen: str) -> str:
    """Where to dial a flowsvc listening on `listen`: a wildcard host means this machine."""
    host, _, port = listen.rpartition(":")
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    return f"{host}:{port}"


@dataclass(frozen=True)
class FlowsvcConnection:
    """FLOWSVC_TARGET (else where FLOWSVC_LISTEN says flowsvc listens), FLOWSVC_TOKEN,
    FLOWSVC_TLS_CA and FLOWSVC_TLS_CLIENT_CERT/KEY, as the gateway names them."""

    target: str
    token: str | None = field(default=None, repr=False)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FlowsvcConnection:
        env = os.environ if environ is None else environ
        listen = env.get("FLOWSVC_LISTEN") or DEFAULT_LISTEN
        return cls(
            target=env.get("FLOWSVC_TARGET") or local_target(listen),
            token=env.get("FLOWSVC_TOKEN") or None,
            tls_ca=env.get("FLOWSVC_TLS_CA") or None,
            tls_cert=env.get("FLOWSVC_TLS_CLIENT_CERT") or None,
            tls_key=env.get("FLOWSVC_TLS_CLIENT_KEY") or None,
        )

    def channel(self) -> grpc.Channel:
        """A channel to flowsvc: TLS when a CA is named (with a client certificate when one is)."""
        if not self.tls_ca:
            return grpc.insecure_channel(self.target)

        def read(path: str | None) -> bytes | None:
            return Path(path).read_bytes() if path else None

        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(self.tls_ca),
            private_key=read(self.tls_key),
            certificate_chain=read(self.tls_cert),
        )
        return grpc.secure_channel(self.target, credentials)

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """What every FlowService call carries: the bearer token, when there is one."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def is_serving(channel: grpc.Channel, timeout: float) -> bool:
    """True when flowsvc's health service answers SERVING within `timeout` seconds."""
    try:
        stub = health_pb2_grpc.HealthStub(channel)
        # types-grpcio-health-checking declares HealthStub without its methods.
        answer = stub.Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(), timeout=timeout, wait_for_ready=True
        )
    except grpc.RpcError:
        return False
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
