"""What the CLI prints: tables for lists, JSON when asked, errors on stderr with every
violation."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

import click
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from menuflow.client import MenuflowError, to_dict

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def when(stamp: timestamp_pb2.Timestamp) -> str:
    if not stamp.seconds:
        return ""
    return stamp.ToDatetime(UTC).strftime("%Y-%m-%d %H:%M:%S")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    shown = Table(title=title, title_justify="left")
    for column in columns:
        shown.add_column(column)
    for row in rows:
        shown.add_row(*(str(cell) for cell in row))
    out.print(shown)


def document(value: Message | dict[str, Any] | list[Any]) -> None:
    """A message (or plain values) as indented JSON."""
    plain = to_dict(value) if isinstance(value, Message) else value
    click.echo(json.dumps(plain, indent=2, ensure_ascii=False))


def failure(error: MenuflowError) -> None:
    err.print(f"[red]{error.code.name}[/red]: {error.message}", markup=True)
    for violation in error.violations:
        err.print(f"  {violation.field}: {violation.description}", markup=False)


def count(number: int, noun: str) -> str:
    """'1 problem', '2 problems'."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
