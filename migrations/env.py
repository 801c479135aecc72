"""Alembic environment: migrations are the only authority over the schema, on both databases."""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from flowsvc.store.db import create_db_engine, normalize_url
from flowsvc.store.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def _url() -> str:
    url = config.attributes.get("database_url") or os.environ.get("DATABASE_URL")
    return normalize_url(url or "sqlite:///menuflow.db")


def _run(connection: Connection) -> None:
    dialect = connection.dialect.name

    def on_this_database(item: object, name: str | None, kind: str, *_: object) -> bool:
        """Autogenerate compares a model's index only where it exists (its info["dialects"])."""
        dialects = getattr(item, "info", {}).get("dialects") if kind == "index" else None
        return dialects is None or dialect in dialects

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        compare_type=True,
        include_object=on_this_database,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(_url(), pool_size=1)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
