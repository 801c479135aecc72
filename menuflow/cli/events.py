"""`menuflow events`: follow what happens (tail) or read what happened (list), filtered."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from menuflow.cli.output import table, when
from menuflow.client import FlowClient, to_dict
from menuflow.v1 import flow_pb2

F = TypeVar("F", bound=Callable[..., Any])
TYPES = [
    name.removeprefix("EVENT_TYPE_").lower()
    for name in flow_pb2.EventType.keys()
    if name != "EVENT_TYPE_UNSPECIFIED"
]


def filters(command: F) -> F:
    for option in reversed(
        [
            click.option(
                "--type",
                "types",
                multiple=True,
                type=click.Choice(TYPES),
                help="Only events of this type (repeat for several).",
            ),
            click.option("--template", default="", help="Only events of this template."),
            click.option("--phone", default="", help="Only events of this customer."),
        ]
    ):
        command = option(command)
    return command


def line(event: flow_pb2.Event) -> str:
    """One event on one line: id, time, type, customer, template, payload as JSON."""
    field = event.WhichOneof("payload")
    details = to_dict(getattr(event, field)) if field else {}
    template = f"{event.template_name}@{event.template_version}" if event.template_name else "-"
    return (
        f"{event.id}  {when(event.create_time)}  {field or '?'}  "
        f"{event.customer.phone_number}  {template}  "
        f"{json.dumps(details, ensure_ascii=False, separators=(',', ':'))}"
    )


def _wanted(context: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "types": options["types"],
        "template_name": options["template"],
        "phone_number": options["phone"],
        "business": context.obj["connection"].business if options["phone"] else "",
    }


@click.group()
def events() -> None:
    """Events: conversations started and completed, steps, messages sent and read..."""


@events.command()
@click.option(
    "--from",
    "from_id",
    type=int,
    help="Resume after this event id (0: from the oldest kept). Default: from now on.",
)
@filters
@click.pass_context
def tail(context: click.Context, /, from_id: int | None, **options: Any) -> None:
    """Follow events as they commit, reconnecting after a break without missing any (Ctrl-C
    stops). One line each, or one JSON object per line with --json."""
    with FlowClient(context.obj["connection"]) as client:
        for event in client.watch_events(from_id, **_wanted(context, options)):
            if context.obj["json"]:
                click.echo(json.dumps(to_dict(event), ensure_ascii=False), nl=True)
            else:
                click.echo(line(event))


@events.command("list")
@click.option("--from", "from_id", type=int, default=0, help="After this event id.")
@click.option("--limit", type=int, default=100, show_default=True)
@filters
@click.pass_context
def list_(context: click.Context, /, from_id: int, limit: int, **options: Any) -> None:
    """Past events, oldest first."""
    with FlowClient(context.obj["connection"]) as client:
        found = client.list_events(from_id, limit=limit, **_wanted(context, options))
    if context.obj["json"]:
        click.echo(json.dumps([to_dict(e) for e in found], indent=2, ensure_ascii=False))
        return
    table(
        f"{len(found)} events",
        ("id", "time", "type", "customer", "template", "details"),
        (line(e).split("  ", 5) for e in found),
    )
