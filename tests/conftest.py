"""Shared fixtures: a migrated database (SQLite, or PostgreSQL via TEST_DATABASE_URL) and a real
flowsvc on loopback. A PostgreSQL that cannot be reached fails the run; it never skips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from flowsvc.seed import seed
from flowsvc.server import Server
from flowsvc.service.templates import Templates
from flowsvc.settings import Settings
from flowsvc.store.db import create_db_engine, create_sessionmaker
from menuflow.business_standin import BusinessStandin
from menuflow.v1 import flow_pb2_grpc
from tests.database import empty_tables, fresh_database, migrate
from tests.servers import running_flowsvc


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("db")
    with fresh_database(os.environ.get("TEST_DATABASE_URL"), Path(folder)) as url:
        migrate(url)
        yield url


@pytest.fixture
def database_url(migrated_database: str) -> str:
    """The test run's database, emptied before each test."""
    empty_tables(migrated_database)
    return migrated_database


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, listen="127.0.0.1:0", grace_seconds=1)


@pytest.fixture
def flowsvc(settings: Settings) -> Iterator[Server]:
    """A real flowsvc on a free loopback port, on an empty database."""
    with running_flowsvc(settings) as server:
        yield server


@pytest.fixture
def flowsvc_target(flowsvc: Server) -> str:
    return f"127.0.0.1:{flowsvc.port}"


@pytest.fixture
def stub(flowsvc_target: str) -> Iterator[flow_pb2_grpc.FlowServiceStub]:
    with grpc.insecure_channel(flowsvc_target) as channel:
        yield flow_pb2_grpc.FlowServiceStub(channel)


@pytest.fixture
def seeded(database_url: str) -> str:
    """The database with the default templates loaded (as `make seed` does)."""
    engine = create_db_engine(database_url, pool_size=1)
    try:
        seed(Templates(create_sessionmaker(engine)))
    finally:
        engine.dispose()
    return database_url


@pytest.fixture
def api() -> Iterator[BusinessStandin]:
    """The business's HTTP APIs that call steps reach (address check, free slots)."""
    server = BusinessStandin().serve()
    yield server
    server.shutdown()
    server.server_close()
