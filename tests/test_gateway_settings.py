"""Gateway settings: defaults, the environment names, secrets required and never shown."""

from __future__ import annotations

import pytest

from gateway.settings import Settings, SettingsError

SECRETS = {
    "META_APP_SECRET": "s3cret-app",
    "META_VERIFY_TOKEN": "s3cret-verify",
    "META_ACCESS_TOKEN": "s3cret-access",
}


def test_defaults_from_an_environment_with_only_the_secrets() -> None:
    settings = Settings.from_env(SECRETS)
    assert (settings.listen_host, settings.port) == ("127.0.0.1", 8080)
    assert settings.flowsvc_target == "127.0.0.1:50051"
    assert settings.graph_base_url == "https://graph.facebook.com/v25.0"
    assert settings.max_body_bytes == 4 * 1024 * 1024
    assert settings.send_rate_per_second == 80
    assert settings.mark_as_read is True
    assert settings.dev_mode is False
    assert settings.gateway_id.startswith("gateway-")
    assert (settings.send_deadline_seconds, settings.send_backoff_max_seconds) == (3600, 30)
    assert (settings.breaker_failures, settings.breaker_cooldown_max_seconds) == (5, 30)


def test_every_name_is_read() -> None:
    settings = Settings.from_env(
        SECRETS
        | {
            "GATEWAY_LISTEN_HOST": "0.0.0.0",
            "GATEWAY_PORT": "9000",
            "FLOWSVC_TARGET": "flowsvc:50051",
            "FLOWSVC_TOKEN": "grpc-token",
            "GRAPH_API_URL": "http://127.0.0.1:1/",
            "GRAPH_API_VERSION": "v26.0",
            "GATEWAY_MAX_BODY_BYTES": "1000",
            "SEND_RATE_PER_SECOND": "20",
            "MARK_AS_READ": "false",
            "GATEWAY_CONCURRENCY": "4",
            "GATEWAY_BATCH_SIZE": "100",
            "OUTBOX_POLL_SECONDS": "0.2",
            "OUTBOX_LEASE_SECONDS": "120",
            "GATEWAY_ID": "gw-1",
            "LOG_LEVEL": "debug",
            "SEND_DEADLINE_SECONDS": "7200",
            "SEND_BACKOFF_MAX_SECONDS": "10",
            "BREAKER_FAILURES": "3",
            "BREAKER_COOLDOWN_SECONDS": "0.5",
            "BREAKER_COOLDOWN_MAX_SECONDS": "60",
        }
    )
    assert settings.graph_base_url == "http://127.0.0.1:1/v26.0"
    assert (settings.port, settings.max_body_bytes, settings.concurrency) == (9000, 1000, 4)
    assert settings.batch_size == 100
    assert (settings.send_rate_per_second, settings.mark_as_read) == (20, False)
    assert (settings.outbox_poll_seconds, settings.outbox_lease_seconds) == (0.2, 120)
    assert (settings.gateway_id, settings.log_level) == ("gw-1", "DEBUG")
    assert settings.flowsvc_token == "grpc-token"
    assert (settings.send_deadline_seconds, settings.send_backoff_max_seconds) == (7200, 10)
    assert settings.breaker_failures == 3
    assert (settings.breaker_cooldown_seconds, settings.breaker_cooldown_max_seconds) == (0.5, 60)


@pytest.mark.parametrize("missing", sorted(SECRETS), ids=str)
def test_a_missing_secret_is_named(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        Settings.from_env(env)


def test_dev_mode_needs_no_secrets() -> None:
    assert Settings.from_env({"GATEWAY_DEV_MODE": "1"}).dev_mode


@pytest.mark.parametrize(
    "env",
    [
        {"GATEWAY_PORT": "eighty"},
        {"SEND_RATE_PER_SECOND": "-1"},
        {"MARK_AS_READ": "maybe"},
        {"OUTBOX_LEASE_SECONDS": "40"},
        {"GATEWAY_BATCH_SIZE": "101"},
        {"GATEWAY_BATCH_SIZE": "0"},
        {"SEND_DEADLINE_SECONDS": "0"},
        {"BREAKER_COOLDOWN_SECONDS": "10", "BREAKER_COOLDOWN_MAX_SECONDS": "5"},
    ],
    ids=[
        "not_a_number",
        "negative",
        "not_a_flag",
        "lease_shorter_than_a_send",
        "batch_past_flowsvcs_limit",
        "empty_batch",
        "no_send_deadline",
        "cooldown_cap_below_the_first",
    ],
)
def test_bad_values_fail_fast(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(SECRETS | env)


def test_secrets_are_not_in_the_repr() -> None:
    shown = repr(Settings.from_env(SECRETS | {"FLOWSVC_TOKEN": "s3cret-grpc"}))
    assert "s3cret" not in shown


@pytest.mark.parametrize(
    ("host", "private"),
    [("127.0.0.1", True), ("::1", True), ("[::1]", True), ("localhost", True)]
    + [("0.0.0.0", False), ("10.0.0.5", False), ("gateway.example", False)],
    ids=str,
)
def test_dev_mode_warns_only_when_others_can_reach_the_gateway(host: str, private: bool) -> None:
    assert (
        Settings.from_env({"GATEWAY_DEV_MODE": "1", "GATEWAY_LISTEN_HOST": host}).listens_privately
        is private
    )
