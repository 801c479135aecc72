"""PostgreSQL statements sent in one round trip, prepared once per connection when enabled.

With prepared statements on (FLOWSVC_DB_PREPARED_STATEMENTS), PostgreSQL parses the hot path's
statements once per connection instead of on every message; each execution is still planned for
its own values (store.db sets plan_cache_mode). Statements are written with `:name` parameters
and an optional array cast (`:ids::text[]`), the cast kept because an empty array has no type.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult

from flowsvc.store.db import PREPARED_STATEMENTS

# A parameter, and the cast it is written with.
_NAMED = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)(::[a-z]+\[\])?")


def run(
    connection: Connection,
    statements: tuple[str, ...],
    parameters: dict[str, Any],
    *,
    first: str = "",
) -> CursorResult[Any]:
    """Run `statements` in one round trip; the rows are the last one's. `first`, a statement
    in psycopg2's own `%(name)s` style (built per call, so never prepared), goes ahead of them
    in the same round trip."""
    ahead = [first] if first else []
    if not connection.get_execution_options().get(PREPARED_STATEMENTS, False):
        return connection.exec_driver_sql(
            ";".join(ahead + list(map(_named, statements))), parameters
        )
    prepared: set[str] = connection.connection.info.setdefault(PREPARED_STATEMENTS, set())
    forms = [_prepared(statement) for statement in statements]
    for form in forms:
        if form.name not in prepared:
            # One at a time, so that what is recorded is exactly what exists; a PREPARE outlives
            # a rollback: it belongs to the connection, not the transaction.
            connection.exec_driver_sql(form.prepare)
            prepared.add(form.name)
    return connection.exec_driver_sql(
        ";".join(ahead + [form.execute for form in forms]), parameters
    )


@dataclass(frozen=True, slots=True)
class _Prepared:
    name: str
    prepare: str
    execute: str


@lru_cache(maxsize=256)
def _prepared(statement: str) -> _Prepared:
    """PREPARE and EXECUTE for a statement with `:name` parameters ($1... in order of first use);
    an argument keeps the cast the statement writes it with."""
    casts: dict[str, str] = {}
    for match in _NAMED.finditer(statement):
        casts.setdefault(match[1], match[2] or "")
    names = list(casts)
    positional = _NAMED.sub(lambda m: f"${names.index(m[1]) + 1}{m[2] or ''}", statement)
    name = "menuflow_" + hashlib.sha256(statement.encode()).hexdigest()[:20]
    arguments = ", ".join(f"%({n})s{casts[n]}" for n in names)
    return _Prepared(
        name,
        f"PREPARE {name} AS {positional}",
        f"EXECUTE {name}({arguments})" if names else f"EXECUTE {name}",
    )


@lru_cache(maxsize=256)
def _named(statement: str) -> str:
    """`:name` parameters in psycopg2's `%(name)s` style."""
    return _NAMED.sub(lambda m: f"%({m[1]})s{m[2] or ''}", statement)


# psycopg2 adapts a list element by element (an int about 1 us, a time about 2.5 us, a short
# text 0.6 us): a turn batch's arrays go as one string in PostgreSQL's array syntax instead, read
# by the cast the statement writes the parameter with (`:versions::int[]`), as every array
# parameter has.


def ints(values: Iterable[int]) -> str:
    """An int[] or bigint[] argument: '{1,2,3}'."""
    return "{" + ",".join([f"{value:d}" for value in values]) + "}"


def times(values: Iterable[datetime | None]) -> str:
    """A timestamptz[] argument: '{"2026-12-02T10:00:00.123456+00:00",NULL}' (ISO 8601, as
    psycopg2 writes a time)."""
    return "{" + ",".join(['"' + t.isoformat() + '"' if t else "NULL" for t in values]) + "}"


def texts(values: Iterable[str | None]) -> str:
    """A text[] argument: '{"a","b \\"quoted\\"",NULL}'. For short texts (ids, names, steps):
    escaping long ones with many quotes (JSON) here costs more than psycopg2's list."""
    quoted = [
        '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if value is not None else "NULL"
        for value in values
    ]
    return "{" + ",".join(quoted) + "}"
