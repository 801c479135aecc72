"""Test databases: a fresh, migrated database per test run, emptied before each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from flowsvc.store.db import alembic_config, create_db_engine, normalize_url
from flowsvc.store.models import Base


@contextmanager
def fresh_database(server_url: str | None, folder: Path) -> Iterator[str]:
    """A new empty database: a file in `folder` for SQLite, or a new database on the PostgreSQL
    server of `server_url`, dropped afterwards, so test runs never see each other's data."""
    if not server_url:
        yield f"sqlite:///{folder / 'menuflow-test.db'}"
        return
    url = make_url(normalize_url(server_url))
    name = f"menuflow_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrate(url: str, revision: str = "head") -> None:
    config = alembic_config(url)
    config.attributes["configure_logger"] = False
    command.upgrade(config, revision)


def downgrade(url: str, revision: str = "base") -> None:
    config = alembic_config(url)
    config.attributes["configure_logger"] = False
    command.downgrade(config, revision)


@cache
def helper_engine(url: str) -> Engine:
    """The one engine of this test process for `url`, shared by the helpers below: each test
    empties the tables and many count rows, and a new engine per call paid a new connection each
    time (about 10 ms on PostgreSQL, more on a busy machine). On PostgreSQL a kept connection is
    pinged before use, for a test may have cut it (tests/test_database_outage.py); SQLite's are
    flowsvc's own (foreign keys on, one writer at a time)."""
    if make_url(normalize_url(url)).get_backend_name() == "sqlite":
        return create_db_engine(url, pool_size=1)
    return create_engine(
        normalize_url(url),
        pool_size=1,
        pool_pre_ping=True,
        hide_parameters=True,
        connect_args={"connect_timeout": 10},
    )


def empty_tables(url: str) -> None:
    """Delete every row (keeping the schema), children first. DELETE, not TRUNCATE: on tables of
    a few rows, PostgreSQL's TRUNCATE of all of them took 55 ms, the DELETEs 2.5 ms."""
    with helper_engine(url).begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


def row_counts(url: str) -> dict[str, int]:
    """How many rows each table holds: for asserting that a failed call changed nothing."""
    with helper_engine(url).connect() as connection:
        return {
            table.name: len(connection.execute(table.select()).all())
            for table in Base.metadata.sorted_tables
        }


def execute(url: str, statement: str, **parameters: object) -> None:
    """Run one SQL statement, e.g. to age a conversation past its expiry."""
    with helper_engine(url).begin() as connection:
        connection.execute(text(statement), parameters)


def processed_ids(url: str) -> set[str]:
    """The inbound message ids flowsvc recorded as handled (its dedupe table)."""
    with helper_engine(url).connect() as connection:
        return set(connection.execute(text("SELECT message_id FROM processed_messages")).scalars())
