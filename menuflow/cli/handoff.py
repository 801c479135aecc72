"""`menuflow handoff`, `menuflow resume` and `menuflow queue`: a minimal terminal agent console.
Hand a customer to people, list who waits, follow their messages (`menuflow events tail --type
customer_message`), answer (`menuflow send --agent`), and give them back to the bot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from menuflow.cli.conversations import (
    _client,
    context_values,
    show_conversation,
    show_queued,
)
from menuflow.cli.output import document, out, table, when
from menuflow.client import to_dict


@click.command()
@click.argument("phone")
@click.option("--reason", default="", help="Why, for the agents.")
@click.option("--queue", default="", help="The queue or tag (default: the server's).")
@click.option("--priority", type=click.IntRange(0, 9), default=0, show_default=True)
@click.option("--text", default="", help="Tell the customer, e.g. that a person will answer.")
@click.option(
    "--until",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]),
    help="Keep the customer with people at least until then (UTC).",
)
@click.pass_context
def handoff(context: click.Context, /, phone: str, **options: Any) -> None:
    """Hand PHONE to people: the bot answers nothing until `menuflow resume`."""
    until = options["until"].replace(tzinfo=UTC) if options["until"] else None
    with _client(context) as client:
        handed = client.hand_off(
            phone,
            reason=options["reason"],
            queue=options["queue"],
            priority=options["priority"],
            text=options["text"],
            until=until,
        )
    if context.obj["json"]:
        document(handed)
        return
    show_queued(handed.messages)
    state = "already handed off" if handed.already_handed_off else "handed off"
    out.print(f"{state} to queue {handed.conversation.handoff.queue}", markup=False)


@click.command()
@click.argument("phone")
@click.option("--step", default="", help="Where the bot takes over (default: the main menu).")
@click.option("--flow", default="", help="Switch to this template.")
@click.option("--end", is_flag=True, help="End the conversation instead.")
@click.option("--set", "pairs", multiple=True, help="key=value to merge into the context.")
@click.option("--context", "raw_json", help="Keys to merge, as a JSON object.")
@click.option("--text", default="", help="Say this first.")
@click.option("--expect-revision", type=int, default=0, help="Refuse if it changed since.")
@click.pass_context
def resume(context: click.Context, /, phone: str, **options: Any) -> None:
    """Give PHONE back to the bot, at a step, a template, or the end."""
    with _client(context) as client:
        resumed = client.resume(
            phone,
            step=options["step"],
            flow=options["flow"],
            end=options["end"],
            context=context_values(options["pairs"], options["raw_json"]),
            text=options["text"],
            expected_revision=options["expect_revision"],
        )
    if context.obj["json"]:
        document(resumed)
        return
    show_queued(resumed.messages)
    if resumed.HasField("conversation"):
        show_conversation(context, resumed.conversation)
    else:
        out.print("ended")


@click.command()
@click.option("--queue", default="", help="Only this queue.")
@click.pass_context
def queue(context: click.Context, queue: str) -> None:
    """The customers handed off to people, oldest first."""
    with _client(context) as client:
        found = client.handed_off(queue=queue, business=context.obj["connection"].business or "")
    if context.obj["json"]:
        document([to_dict(c) for c in found])
        return
    now = datetime.now(UTC)
    table(
        f"{len(found)} customers with people",
        ("customer", "queue", "priority", "waiting since", "minutes", "back to the bot", "reason"),
        (
            (
                c.customer.phone_number,
                c.handoff.queue,
                c.handoff.priority,
                when(c.handoff.create_time),
                int((now - c.handoff.create_time.ToDatetime(UTC)).total_seconds() // 60),
                when(c.handoff.resume_time) if c.handoff.HasField("resume_time") else "never",
                c.handoff.reason,
            )
            for c in found
        ),
    )
