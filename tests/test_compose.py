"""docker-compose.yml cannot run here (no Docker engine), so check what can be checked: it parses,
and every environment variable it sets is one the service's settings actually read."""

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
