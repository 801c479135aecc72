"""How the gateway reaches FlowService: gRPC channels (TLS when configured, UNAVAILABLE retried as
every call is idempotent, keepalive), and Calls: the stubs, identity and deadline of every call."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from gateway.settings import Settings
from menuflow.v1 import flow_pb2_grpc

_SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "menuflow.v1.FlowService"}, {"service": "grpc.health.v1.Health"}],
            # HandleMessage dedupes by message id, RecordStatus never downgrades, acks and claims
            # are per lease: a call retried after a lost answer changes nothing twice.
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


@dataclass(frozen=True)
class Calls:
    """How this gateway calls FlowService: its identity, credentials and deadline.

    With several channels, each call takes the next one in turn.
    """

    stubs: tuple[flow_pb2_grpc.FlowServiceAsyncStub, ...]
    owner: str
    metadata: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    _turn: Iterator[flow_pb2_grpc.FlowServiceAsyncStub] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_turn", itertools.cycle(self.stubs))

    @property
    def flow(self) -> flow_pb2_grpc.FlowServiceAsyncStub:
        return next(self._turn)


def open_channels(settings: Settings) -> list[grpc.aio.Channel]:
    """FLOWSVC_CHANNELS channels to FlowService, each its own HTTP/2 connection.

    One connection reaches one flowsvc process: when several flowsvc processes share a port
    (SO_REUSEPORT) or sit behind a TCP balancer, only several connections spread the calls.
    """
    return [open_channel(settings) for _ in range(settings.flowsvc_channels)]


def open_channel(settings: Settings) -> grpc.aio.Channel:
    """One channel (one HTTP/2 connection) to FlowService."""
    options = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(_SERVICE_CONFIG)),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        # Otherwise channels with equal arguments share one connection from gRPC's global pool.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if not settings.flowsvc_tls_ca:
        return grpc.aio.insecure_channel(settings.flowsvc_target, options=options)
    return grpc.aio.secure_channel(settings.flowsvc_target, _credentials(settings), options=options)


def _credentials(settings: Settings) -> grpc.ChannelCredentials:
    """Trust flowsvc's CA; present a client certificate when flowsvc requires one (mTLS)."""

    def read(path: str | None) -> bytes | None:
        return Path(path).read_bytes() if path else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(settings.flowsvc_tls_ca),
        private_key=read(settings.flowsvc_tls_key),
        certificate_chain=read(settings.flowsvc_tls_cert),
    )


def call_metadata(settings: Settings) -> tuple[tuple[str, str], ...]:
    """What every FlowService call carries: the shared bearer token, when one is configured."""
    if settings.flowsvc_token:
        return (("authorization", f"Bearer {settings.flowsvc_token}"),)
    return ()
