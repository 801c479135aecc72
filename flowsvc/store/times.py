"""Datetimes in plain SQL: written and read back as each database's driver has them, UTC-aware.

The ORM does the same through models.UTCDateTime; plain statements (the turns, the acks) go
straight to the driver and convert here, so that rows written either way read the same.
"""

from __future__ import annotations

from datetime import UTC, datetime


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's DateTime stores on SQLite (naive UTC), so both read each other's."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def read_time(value: datetime | str) -> datetime:
    """A timestamp as either driver returns it (SQLite: text), UTC-aware."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
