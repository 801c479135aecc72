"""`menuflow conversations`, `menuflow results` and `menuflow send`: what integrators do with
customers' conversations from the command line."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from menuflow.cli.output import document, out, table, when
from menuflow.client import FlowClient, message_template, to_dict
from menuflow.v1 import flow_pb2

F = TypeVar("F", bound=Callable[..., Any])


def _client(context: click.Context) -> FlowClient:
    return FlowClient(context.obj["connection"])


def _value(raw: str) -> Any:
    """A --set value: JSON when it parses (true, 3, "x", [1]), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def context_values(pairs: tuple[str, ...], raw_json: str | None) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(raw_json) if raw_json else {}
    for pair in pairs:
        key, equals, raw = pair.partition("=")
        if not equals or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--set")
        values[key] = _value(raw)
    return values


def _indexed(pairs: tuple[str, ...], option: str) -> dict[int, str]:
    found = {}
    for pair in pairs:
        index, equals, value = pair.partition("=")
        if not equals or not index.isdigit():
            raise click.BadParameter(f"{pair!r} is not INDEX=VALUE", param_hint=option)
        found[int(index)] = value
    return found


def template_options(command: F) -> F:
    """The options that describe a Meta message template (sent outside the service window)."""
    for option in reversed(
        [
            click.option("--template", "template_name", help="A Meta message template's name."),
            click.option("--language", default="en_US", show_default=True),
            click.option("--body-param", multiple=True, help="A body parameter, in order."),
            click.option("--header-param", help="The text header's parameter."),
            click.option("--quick-reply", multiple=True, help="INDEX=PAYLOAD of a button."),
            click.option("--url-text", multiple=True, help="INDEX=TEXT of a URL button."),
        ]
    ):
        command = option(command)
    return command


def message_template_of(options: dict[str, Any]) -> flow_pb2.MessageTemplate | None:
    if not options["template_name"]:
        return None
    return message_template(
        options["template_name"],
        options["language"],
        body=options["body_param"],
        header=options["header_param"],
        quick_replies=_indexed(options["quick_reply"], "--quick-reply"),
        url_texts=_indexed(options["url_text"], "--url-text"),
    )


def _template_fields(options: dict[str, Any]) -> dict[str, Any]:
    keys = ("template_name", "language", "body_param", "header_param", "quick_reply", "url_text")
    return {key: options.pop(key) for key in keys}


def show_conversation(context: click.Context, found: flow_pb2.Conversation) -> None:
    if context.obj["json"]:
        document(found)
        return
    table(
        f"conversation of {found.customer.phone_number}",
        ("flow", "version", "step", "revision", "last message", "expires", "context"),
        [
            (
                found.flow,
                found.template_version,
                found.current_step,
                found.revision,
                when(found.last_interaction_time),
                when(found.expire_time),
                json.dumps(to_dict(found).get("context", {}), ensure_ascii=False),
            )
        ],
    )


def show_queued(messages: Any) -> None:
    for message in messages:
        body = json.loads(message.body_json)
        out.print(f"queued #{message.id}: {body.get('type')}", markup=False)


@click.group()
def conversations() -> None:
    """Customers' conversations: list, show, start, update, end."""


@conversations.command("list")
@click.option("--flow", default="", help="Only those running this template.")
@click.option("--step", default="", help="Only those waiting in this step.")
@click.pass_context
def list_(context: click.Context, flow: str, step: str) -> None:
    """Active conversations, oldest first."""
    with _client(context) as client:
        found = client.list_conversations(
            flow=flow, step=step, business=context.obj["connection"].business
        )
    if context.obj["json"]:
        document([to_dict(c) for c in found])
        return
    table(
        f"{len(found)} conversations",
        ("customer", "flow", "step", "revision", "last message", "expires"),
        (
            (
                c.customer.phone_number,
                c.flow,
                c.current_step,
                c.revision,
                when(c.last_interaction_time),
                when(c.expire_time),
            )
            for c in found
        ),
    )


@conversations.command()
@click.argument("phone")
@click.pass_context
def show(context: click.Context, phone: str) -> None:
    """A customer's active conversation."""
    with _client(context) as client:
        show_conversation(context, client.get_conversation(phone))


@conversations.command()
@click.argument("phone")
@click.argument("template")
@click.option("--step", default="", help="The step to start in (default: initial).")
@click.option("--set", "pairs", multiple=True, help="key=value to put in the context.")
@click.option("--context", "raw_json", help="The context as a JSON object.")
@click.option("--ttl-hours", type=float, help="How long it waits for the customer.")
@template_options
@click.pass_context
def start(context: click.Context, /, phone: str, template: str, **options: Any) -> None:
    """Start TEMPLATE for PHONE (outside the service window, --template is sent instead)."""
    fields = _template_fields(options)
    with _client(context) as client:
        started = client.start_conversation(
            phone,
            template,
            context=context_values(options["pairs"], options["raw_json"]),
            initial_step=options["step"],
            ttl=timedelta(hours=options["ttl_hours"]) if options["ttl_hours"] else None,
            template=message_template_of(fields),
        )
    show_queued(started.messages)
    if started.HasField("conversation"):
        show_conversation(context, started.conversation)


@conversations.command()
@click.argument("phone")
@click.option("--step", default="", help="Move to this step.")
@click.option("--flow", default="", help="Switch to this template.")
@click.option("--set", "pairs", multiple=True, help="key=value to merge into the context.")
@click.option("--context", "raw_json", help="Keys to merge, as a JSON object.")
@click.option("--expect-revision", type=int, default=0, help="Refuse if it changed since.")
@click.option("--send", is_flag=True, help="Send the messages of the step it ends in.")
@template_options
@click.pass_context
def update(context: click.Context, /, phone: str, **options: Any) -> None:
    """Merge context into PHONE's conversation and/or move it to a step."""
    fields = _template_fields(options)
    with _client(context) as client:
        updated = client.update_conversation(
            phone,
            context=context_values(options["pairs"], options["raw_json"]),
            step=options["step"],
            flow=options["flow"],
            expected_revision=options["expect_revision"],
            send=options["send"],
            template=message_template_of(fields),
        )
    show_queued(updated.messages)
    if updated.result_reference:
        out.print(f"completed: result {updated.result_reference}")
    if updated.HasField("conversation"):
        show_conversation(context, updated.conversation)


@conversations.command()
@click.argument("phone")
@click.pass_context
def end(context: click.Context, phone: str) -> None:
    """End PHONE's conversation without sending anything."""
    with _client(context) as client:
        ended = client.end_conversation(phone)
    out.print(f"ended: {ended.flow} at {ended.current_step}")


@click.group()
def results() -> None:
    """Completed flows' results (orders)."""


@results.command("list")
@click.option("--template", "template_name", default="", help="Only this template's.")
@click.option("--phone", default="", help="Only this customer's.")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def list_results(context: click.Context, template_name: str, phone: str, limit: int) -> None:
    """Results, newest first."""
    with _client(context) as client:
        found = client.list_results(
            template_name=template_name,
            phone_number=phone,
            business=context.obj["connection"].business if phone else "",
            limit=limit,
        )
    if context.obj["json"]:
        document([to_dict(r) for r in found])
        return
    table(
        f"{len(found)} results",
        ("reference", "template", "customer", "created", "context"),
        (
            (
                r.reference,
                r.template_name,
                r.customer.phone_number,
                when(r.create_time),
                json.dumps(to_dict(r).get("context", {}), ensure_ascii=False),
            )
            for r in found
        ),
    )


@results.command("show")
@click.argument("reference")
@click.pass_context
def show_result(context: click.Context, reference: str) -> None:
    """One result by its reference."""
    with _client(context) as client:
        document(client.get_result(reference))


@click.command()
@click.argument("phone")
@click.option("--text", help="A text message.")
@click.option(
    "--interactive",
    type=click.Path(exists=True, dir_okay=False),
    help="A JSON file with a button or list message, written as in templates.",
)
@click.option("--agent", default="", help="Your name, for a handed-off customer's agents.")
@template_options
@click.pass_context
def send(context: click.Context, /, phone: str, **options: Any) -> None:
    """Send PHONE a message, in order with the bot's replies (outside the customer service
    window, --template is sent instead)."""
    fields = _template_fields(options)
    interactive = None
    if options["interactive"]:
        interactive = json.loads(Path(options["interactive"]).read_text(encoding="utf-8"))
    with _client(context) as client:
        sent = client.send_message(
            phone,
            text=options["text"],
            interactive=interactive,
            template=message_template_of(fields),
            agent=options["agent"],
        )
    if context.obj["json"]:
        document(sent)
    else:
        show_queued([sent])
