"""docker-compose.yml, read as a file (the image itself is built and run by `make image-smoke`):
every variable it sets is one the service's settings read, flowsvc's gRPC port is published on the
host's loopback only, every long-running service has a healthcheck that asks where it listens, and
both sides carry the same required token."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from flowsvc.settings import Settings as FlowsvcSettings
from gateway.settings import Settings as GatewaySettings

COMPOSE = Path(__file__).parents[1] / "docker-compose.yml"


class RecordingEnviron(Mapping[str, str]):
    """An empty environment that remembers which names were asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return self.values.get(key, default)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def names_read(from_env: Callable[[Mapping[str, str]], Any], values: Mapping[str, str]) -> set[str]:
    environ = RecordingEnviron(values)
    from_env(environ)
    return environ.read


def compose_environment(service: str) -> dict[str, str]:
    compose = yaml.safe_load(COMPOSE.read_text())
    return {key: str(value) for key, value in compose["services"][service]["environment"].items()}


def test_compose_has_every_service() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    assert set(compose["services"]) == {"db", "migrate", "flowsvc", "gateway"}


@pytest.mark.parametrize("service", ["flowsvc", "migrate"])
def test_flowsvc_reads_every_variable_compose_sets(service: str) -> None:
    environment = compose_environment(service)
    assert set(environment) <= names_read(FlowsvcSettings.from_env, environment)


def test_the_gateway_reads_every_variable_compose_sets() -> None:
    environment = compose_environment("gateway")
    assert set(environment) <= names_read(GatewaySettings.from_env, environment)


def compose_file() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


LONG_RUNNING = ["db", "flowsvc", "gateway"]  # migrate runs once and exits


def test_flowsvc_is_published_on_the_hosts_loopback_only() -> None:
    services = compose_file()["services"]
    listen_port = services["flowsvc"]["environment"]["FLOWSVC_LISTEN"].rpartition(":")[2]

    assert services["flowsvc"]["ports"] == [f"127.0.0.1:50051:{listen_port}"]
    assert "ports" not in services["db"]
    assert "ports" not in services["migrate"]


def test_the_gateway_is_published_on_its_port() -> None:
    gateway = compose_file()["services"]["gateway"]
    port = gateway["environment"]["GATEWAY_PORT"]

    assert gateway["ports"] == [f"{port}:{port}"]


@pytest.mark.parametrize("service", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck(service: str) -> None:
    definition = compose_file()["services"][service]

    assert definition["healthcheck"]["test"][0] == "CMD"
    assert "restart" in definition or service == "db"


def test_the_healthchecks_ask_where_the_services_listen() -> None:
    services = compose_file()["services"]
    flowsvc_port = services["flowsvc"]["environment"]["FLOWSVC_LISTEN"].rpartition(":")[2]
    gateway_port = services["gateway"]["environment"]["GATEWAY_PORT"]

    assert f"127.0.0.1:{flowsvc_port}'" in " ".join(services["flowsvc"]["healthcheck"]["test"])
    gateway_check = " ".join(services["gateway"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{gateway_port}/readyz" in gateway_check


def test_the_gateway_calls_flowsvc_with_a_required_token_of_the_gateway_role() -> None:
    services = compose_file()["services"]
    gateway_token = "${FLOWSVC_GATEWAY_TOKEN:?set FLOWSVC_GATEWAY_TOKEN}"
    flowsvc = services["flowsvc"]["environment"]

    assert flowsvc["FLOWSVC_TOKEN"] == "${FLOWSVC_TOKEN:?set FLOWSVC_TOKEN}"  # the admins'
    assert f"gateway:{gateway_token}" in flowsvc["FLOWSVC_TOKENS"].split(",")
    assert services["gateway"]["environment"]["FLOWSVC_TOKEN"] == gateway_token


def test_the_gateway_dials_the_flowsvc_service_on_its_listen_port() -> None:
    services = compose_file()["services"]
    flowsvc_port = services["flowsvc"]["environment"]["FLOWSVC_LISTEN"].rpartition(":")[2]

    assert services["gateway"]["environment"]["FLOWSVC_TARGET"] == f"flowsvc:{flowsvc_port}"
