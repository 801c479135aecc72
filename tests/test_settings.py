"""flowsvc's settings: the security and retention rules they enforce before anything starts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flowsvc.settings import Settings, SettingsError, is_loopback


@pytest.mark.parametrize(
    ("listen", "private"),
    [
        pytest.param("127.0.0.1:50051", True, id="ipv4-loopback"),
        pytest.param("127.0.0.2:50051", True, id="ipv4-loopback-range"),
        pytest.param("[::1]:50051", True, id="ipv6-loopback"),
        pytest.param("localhost:50051", True, id="localhost"),
        pytest.param("unix:/run/flowsvc.sock", True, id="unix-socket"),
        pytest.param("0.0.0.0:50051", False, id="ipv4-any"),
        pytest.param("[::]:50051", False, id="ipv6-any"),
        pytest.param(":50051", False, id="no-host"),
        pytest.param("10.0.0.5:50051", False, id="private-network"),
        pytest.param("flowsvc:50051", False, id="host-name"),
    ],
)
def test_which_listen_addresses_are_loopback(listen: str, private: bool) -> None:
    assert is_loopback(listen) is private


@pytest.mark.parametrize(
    "environ",
    [
        pytest.param({"FLOWSVC_TOKEN": "x"}, id="token"),
        pytest.param({"FLOWSVC_ALLOW_UNAUTHENTICATED": "1"}, id="told-to"),
        pytest.param(
            {"FLOWSVC_TLS_CERT": "c", "FLOWSVC_TLS_KEY": "k", "FLOWSVC_TLS_CLIENT_CA": "ca"},
            id="client-certificates",
        ),
    ],
)
def test_an_open_listen_address_needs_a_way_to_tell_callers_apart(
    environ: dict[str, str],
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"FLOWSVC_LISTEN": "0.0.0.0:50051"})
    assert "FLOWSVC_TOKEN" in str(caught.value)
    assert "FLOWSVC_ALLOW_UNAUTHENTICATED=1" in str(caught.value)

    settings = Settings.from_env({"FLOWSVC_LISTEN": "0.0.0.0:50051", **environ})
    assert settings.listen == "0.0.0.0:50051"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        pytest.param({"FLOWSVC_TLS_CERT": "c"}, "FLOWSVC_TLS_KEY", id="cert-without-key"),
        pytest.param({"FLOWSVC_TLS_KEY": "k"}, "FLOWSVC_TLS_CERT", id="key-without-cert"),
        pytest.param({"FLOWSVC_TLS_CLIENT_CA": "ca"}, "FLOWSVC_TLS_CERT", id="ca-without-tls"),
        pytest.param(
            {"FLOWSVC_ALLOW_UNAUTHENTICATED": "maybe"},
            "FLOWSVC_ALLOW_UNAUTHENTICATED",
            id="not-a-boolean",
        ),
        pytest.param({"FLOWSVC_RETENTION_DAYS": "-1"}, "FLOWSVC_RETENTION_DAYS", id="negative"),
        pytest.param({"FLOWSVC_EVENT_BATCH_MS": "-5"}, "FLOWSVC_EVENT_BATCH_MS", id="batch-ms"),
        pytest.param(
            {"FLOWSVC_RETENTION_DAYS": "3"},
            "FLOWSVC_DEDUPE_RETENTION_HOURS",
            id="retention-shorter-than-dedupe",
        ),
    ],
)
def test_bad_security_and_retention_settings_are_named(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        pytest.param(None, timedelta(days=90), id="default"),
        pytest.param("30", timedelta(days=30), id="days"),
        pytest.param("0", None, id="zero-keeps-forever"),
    ],
)
def test_retention_days(raw: str | None, kept: timedelta | None) -> None:
    environ = {} if raw is None else {"FLOWSVC_RETENTION_DAYS": raw}
    assert Settings.from_env(environ).retention == kept


@pytest.mark.parametrize(
    ("raw", "ms"), [pytest.param(None, 25, id="default"), pytest.param("50", 50, id="set")]
)
def test_event_batch_ms(raw: str | None, ms: int) -> None:
    environ = {} if raw is None else {"FLOWSVC_EVENT_BATCH_MS": raw}
    assert Settings.from_env(environ).event_batch_ms == ms


def test_the_token_is_not_in_the_repr() -> None:
    settings = Settings.from_env({"FLOWSVC_TOKEN": "hunter2-token"})
    assert settings.auth_token == "hunter2-token"
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(("raw", "on"), [(None, True), ("0", False), ("false", False), ("1", True)])
def test_prepared_statements_are_on_unless_turned_off(raw: str | None, on: bool) -> None:
    environ = {} if raw is None else {"FLOWSVC_DB_PREPARED_STATEMENTS": raw}
    assert Settings.from_env(environ).db_prepared_statements is on


def test_a_prepared_statements_setting_that_is_not_a_boolean_is_named() -> None:
    with pytest.raises(SettingsError, match="FLOWSVC_DB_PREPARED_STATEMENTS"):
        Settings.from_env({"FLOWSVC_DB_PREPARED_STATEMENTS": "sometimes"})
