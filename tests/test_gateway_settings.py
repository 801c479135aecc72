"""Gateway settings: defaults, the environment names, secrets required and never shown."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


HOOK = {"name": "kitchen", "url": "https://kitchen.example/hook", "secret_env": "KITCHEN_KEY"}


def hooks(*items: dict[str, object], **env: str) -> dict[str, str]:
    return SECRETS | {"EVENT_ENDPOINTS": json.dumps(list(items))} | env


def test_event_endpoints_are_read_with_their_secret_from_the_variable_they_name() -> None:
    item = HOOK | {"types": ["flow_completed", "EVENT_TYPE_MESSAGE_FAILED"], "start": "oldest"}
    settings = Settings.from_env(
        hooks(item, KITCHEN_KEY="s3cret-hook", EVENT_LEASE_SECONDS="40", EVENT_WAIT_SECONDS="2")
    )
    (endpoint,) = settings.event_endpoints
    assert (endpoint.name, endpoint.url, endpoint.secret) == (
        "kitchen",
        "https://kitchen.example/hook",
        "s3cret-hook",
    )
    assert endpoint.types == {"flow_completed", "message_failed"}
    assert endpoint.from_oldest and endpoint.deadline_seconds == 3600
    assert (settings.event_lease_seconds, settings.event_wait_seconds) == (40, 2.0)
    assert "s3cret" not in repr(settings)
    assert Settings.from_env(SECRETS).event_endpoints == ()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        (hooks(HOOK), "KITCHEN_KEY is not set"),
        (hooks(HOOK | {"url": "http://kitchen.example/"}, KITCHEN_KEY="k"), "https only"),
        (hooks(HOOK | {"types": ["flow_done"]}, KITCHEN_KEY="k"), "unknown ['flow_done']"),
        (hooks(HOOK, HOOK, KITCHEN_KEY="k"), "unique"),
        (hooks(HOOK | {"deadline": 3}, KITCHEN_KEY="k"), "unknown keys ['deadline']"),
        (hooks(HOOK | {"deadline_seconds": 0}, KITCHEN_KEY="k"), "deadline_seconds"),
        (SECRETS | {"EVENT_ENDPOINTS": "{"}, "not JSON"),
        (hooks(HOOK, KITCHEN_KEY="k", EVENT_LEASE_SECONDS="5"), "EVENT_LEASE_SECONDS=5"),
    ],
    ids=[
        "no_secret",
        "plain_http",
        "unknown_type",
        "twice",
        "unknown_key",
        "zero_deadline",
        "not_json",
        "lease_too_short",
    ],
)
def test_bad_event_endpoints_fail_fast_naming_the_problem(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(named)):
        Settings.from_env(env)


def test_plain_http_is_allowed_to_a_loopback_receiver() -> None:
    loopback = HOOK | {"url": "http://127.0.0.1:9000/hook"}
    assert Settings.from_env(hooks(loopback, KITCHEN_KEY="k")).event_endpoints[0].url


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


def test_the_readmes_event_endpoints_example_is_read() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    line = next(x for x in readme.splitlines() if x.startswith("export EVENT_ENDPOINTS='"))
    raw = line.removeprefix("export EVENT_ENDPOINTS='").removesuffix("'")
    settings = Settings.from_env(SECRETS | {"EVENT_ENDPOINTS": raw, "KITCHEN_HOOK_SECRET": "k"})
    assert [e.name for e in settings.event_endpoints] == ["kitchen"]
