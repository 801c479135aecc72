"""The gRPC channel to FlowService: retries on UNAVAILABLE (every call is idempotent), keepalive."""

from __future__ import annotations

import json

import grpc

from gateway.settings import Settings

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


def open_channel(settings: Settings) -> grpc.aio.Channel:
    """One channel (one HTTP/2 connection) to FlowService."""
    options = [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(_SERVICE_CONFIG)),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]
    return grpc.aio.insecure_channel(settings.flowsvc_target, options=options)


def call_metadata(settings: Settings) -> tuple[tuple[str, str], ...]:
    """What every FlowService call carries: the shared bearer token, when one is configured."""
    if settings.flowsvc_token:
        return (("authorization", f"Bearer {settings.flowsvc_token}"),)
    return ()
