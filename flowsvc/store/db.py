"""Database engines and sessions, and the check that the schema is migrated to head."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CursorResult, Delete, Engine, Update, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

ROOT = Path(__file__).resolve().parents[2]


# The engine execution option that lets store.turns use prepared statements (PostgreSQL).
PREPARED_STATEMENTS = "menuflow_prepared_statements"

# Connection failures, a server that went away, pool exhaustion: the same work may succeed later.
UNREACHABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)


class SchemaBehindError(RuntimeError):
    """The database's schema is not at the migrations' head: flowsvc must not run on it."""


def normalize_url(url: str) -> str:
    """Accept postgres:// and postgresql:// (as Heroku-style URLs and compose files write them)."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def create_db_engine(url: str, *, pool_size: int = 8, prepared_statements: bool = True) -> Engine:
    """An engine with the settings each database needs for one-transaction-per-message work.
    Errors never show statement parameters: they hold customers' numbers and messages.

    `prepared_statements` lets the hot path prepare its PostgreSQL statements once per connection
    (store.turns); turn it off behind a pooler that shares server connections between
    transactions (PgBouncer's transaction mode), where a prepared statement may not be there."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _serialize_sqlite_writers(engine)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        hide_parameters=True,  # a failed statement's error must not log a customer's text
        connect_args={
            "connect_timeout": 10,
            # A prepared statement's plan is still made for each execution's values: a plan
            # cached while the outbox was small would keep scanning the wrong index as it grows.
            **({"options": "-c plan_cache_mode=force_custom_plan"} if prepared_statements else {}),
        },
        execution_options={PREPARED_STATEMENTS: prepared_statements},
    )
    _ping_when_idle(engine, IDLE_PING_SECONDS)
    return engine


IDLE_PING_SECONDS = 5.0


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before use only if it sat idle for `idle_seconds`.

    pool_pre_ping pings on every checkout: one more round trip per message. A connection used
    moments ago is alive unless the server just went away, and then the first statement fails,
    the pool drops every connection, and a HandleMessage retries once (it is idempotent).
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError() from error  # the pool connects anew and retries


def _serialize_sqlite_writers(engine: Engine) -> None:
    """SQLite has one writer: take the write lock at BEGIN, so two transactions never deadlock
    upgrading a read lock, and wait for it (busy_timeout) instead of failing."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose commits also write the events their work recorded (store.events)."""
    from flowsvc.store import events  # it reads this module: imported once both exist

    sessions = sessionmaker(engine, expire_on_commit=False)
    events.attach(sessions)
    return sessions


def affected_rows(session: Session, statement: Delete | Update) -> int:
    """Run a DELETE or UPDATE; how many rows it changed. Nothing changed this way is loaded in the
    session, so the ORM need not find and expire it."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)  # a DELETE's or UPDATE's result always is
    return result.rowcount


def alembic_config(url: str) -> Config:
    """Alembic's configuration for this repository, pointed at `url`."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = normalize_url(url)
    return config


@cache
def migrations_head() -> str | None:
    """The newest migration's revision, read once per process: reading parses every migration
    script (70 ms), and they do not change under a running process. It is asked again by a flowsvc
    that retries its start through a database outage, and by every flowsvc a test starts."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def check_schema(engine: Engine) -> None:
    """Refuse to run on a database whose schema is not at the migrations' head."""
    head = migrations_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current != head:
        raise SchemaBehindError(
            f"the database schema is at revision {current or 'none (empty database)'}, "
            f"flowsvc needs {head}: run `make migrate` (alembic upgrade head) first"
        )
