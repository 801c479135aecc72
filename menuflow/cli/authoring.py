"""`menuflow templates publish|rollback|versions|changes|preview|stats`: drafts made live,
earlier versions restored, versions compared, a version shown as WhatsApp shows it, and where
customers drop off."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from menuflow import chat
from menuflow.cli.output import document, err, out, table, when
from menuflow.client import FlowClient, to_dict
from menuflow.v1 import flow_pb2

KIND_LABELS = {
    flow_pb2.CHANGE_KIND_STEP_ADDED: "step added",
    flow_pb2.CHANGE_KIND_STEP_REMOVED: "step removed",
    flow_pb2.CHANGE_KIND_TEXT_CHANGED: "text",
    flow_pb2.CHANGE_KIND_TARGET_CHANGED: "target",
    flow_pb2.CHANGE_KIND_OPTION_ADDED: "option added",
    flow_pb2.CHANGE_KIND_OPTION_REMOVED: "option removed",
    flow_pb2.CHANGE_KIND_SETTING_CHANGED: "setting",
}


def _client(context: click.Context) -> FlowClient:
    return FlowClient(context.obj["connection"])


def status(template: flow_pb2.Template) -> str:
    return "live" if template.live else "draft" if template.draft else ""


def publish_version(context: click.Context, name: str, version: int) -> None:
    with _client(context) as flow:
        published = flow.publish_template(name, version)
    if context.obj["json"]:
        document(published)
        return
    before = published.previous_live_version or "none"
    out.print(f"{name}: version {published.template.version} is live (was {before})")


@click.command()
@click.argument("name")
@click.option("--version", type=int, default=0, help="The version to make live (default: latest).")
@click.option(
    "--tests",
    multiple=True,
    help="Scripted tests (files or folders) to run against the version first; a failure blocks.",
)
@click.option("--force", is_flag=True, help="Publish even if the scripted tests fail.")
@click.pass_context
def publish(
    context: click.Context, name: str, version: int, tests: tuple[str, ...], force: bool
) -> None:
    """Make a version of NAME (default: the latest, e.g. a draft) live. Running conversations
    keep their version. With --tests, the scripted tests run against it first, in the sandbox."""
    if tests:
        from menuflow.cli.flowtests import report, run_tests

        with _client(context) as flow:
            number = version or flow.get_template(name).version
            outcomes, errors = run_tests(flow, tests, versions={name: number})
        if not report(outcomes, errors):
            if not force:
                raise click.ClickException(
                    f"{name}: scripted tests failed: version {number} not published "
                    "(--force publishes anyway)"
                )
            err.print(f"{name}: scripted tests failed; publishing anyway (--force)")
        version = number
    publish_version(context, name, version)


@click.command()
@click.argument("name")
@click.option("--to", "version", type=int, default=0, help="The version to make live again.")
@click.pass_context
def rollback(context: click.Context, name: str, version: int) -> None:
    """Make an earlier version of NAME live again (default: the last one that was live before
    the current one)."""
    if not version:
        with _client(context) as flow:
            versions = flow.list_template_versions(name)
        live = next((v.version for v in versions if v.live), 0)
        earlier = [v.version for v in versions if v.version < live and not v.draft]
        if not earlier:
            raise click.ClickException(f"{name}: no earlier live version to roll back to")
        version = max(earlier)
    publish_version(context, name, version)


@click.command()
@click.argument("name")
@click.pass_context
def versions(context: click.Context, name: str) -> None:
    """The versions of NAME, newest first: which is live, which are drafts."""
    with _client(context) as flow:
        found = flow.list_template_versions(name)
    if context.obj["json"]:
        document([to_dict(v) for v in found])
        return
    table(
        f"{name}: {len(found)} versions",
        ("version", "status", "active", "written"),
        ((v.version, status(v), v.is_active, when(v.version_create_time)) for v in found),
    )


@click.command()
@click.argument("name")
@click.option("--from", "old", type=int, default=0, help="Compare from (default: live).")
@click.option("--to", "new", type=int, default=0, help="Compare to (default: latest).")
@click.pass_context
def changes(context: click.Context, name: str, old: int, new: int) -> None:
    """What changed between two versions of NAME (default: live -> latest): steps, texts,
    options, targets, settings."""
    with _client(context) as flow:
        diff = flow.diff_template_versions(name, old, new)
    if context.obj["json"]:
        document(diff)
        return
    table(
        f"{name}: version {diff.from_version} -> {diff.to_version}, {len(diff.changes)} changes",
        ("change", "step", "field", "before", "after"),
        (
            (KIND_LABELS.get(c.kind, "?"), c.step, c.field, c.old_value, c.new_value)
            for c in diff.changes
        ),
    )


@click.command()
@click.argument("name")
@click.option("--version", type=int, default=0, help="A version (default: live, else latest).")
@click.option(
    "--context",
    "sample",
    default="{}",
    help='Sample context for placeholders, as JSON: \'{"product": "Coffee"}\'.',
)
@click.pass_context
def preview(context: click.Context, name: str, version: int, sample: str) -> None:
    """NAME step by step as WhatsApp shows it, and where each choice leads."""
    try:
        values = json.loads(sample)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--context") from None
    if not isinstance(values, dict):
        raise click.BadParameter("a JSON object", param_hint="--context")
    with _client(context) as flow:
        shown = flow.preview_template(name, version, values)
    if context.obj["json"]:
        document(shown)
        return
    template = shown.template
    out.print(f"[bold]{template.name}[/bold] version {template.version} {status(template)}")
    for step in shown.steps:
        out.print(step_panel(step))


def step_panel(step: flow_pb2.PreviewStep) -> Panel:
    """One step: its messages as chat bubbles, then where its choices and inputs lead."""
    parts: list[RenderableType] = [bubble(to_dict(body)) for body in step.messages]
    leads = Text()
    targets = {c.id: c.target for c in step.choices}
    for choice in step.choices:
        leads.append(f"  {choice.title}", style="cyan")
        leads.append(f"  -> {choice.target or '(stays)'}\n")
    if step.next_step and step.next_step not in targets.values() or step.input:
        typed = f"typed {step.input}" if step.input else "any other answer"
        key = f" into {{{step.context_key}}}" if step.context_key else ""
        leads.append(f"  {typed}{key}  -> {step.next_step or '(stays)'}\n")
    if step.end_conversation:
        leads.append("  (the conversation ends here)\n", style="italic")
    if step.missing_placeholders:
        names = ", ".join(step.missing_placeholders)
        leads.append(f"  no sample for: {names}\n", style="yellow")
    if leads.plain:
        parts.append(leads)
    return Panel(Group(*parts), title=step.step, title_align="left")


def bubble(body: dict[str, Any]) -> Panel:
    """A Graph API body as the customer's phone shows it."""
    text = Text()
    if body.get("type") == "text":
        text.append(str(body.get("text", {}).get("body", "")))
        return Panel(text, expand=False, border_style="green")
    if body.get("type") != "interactive":  # media, a location, contact cards
        text.append(chat.render_other(body))
        return Panel(text, expand=False, border_style="green")
    interactive = body.get("interactive", {})
    header = interactive.get("header", {})
    if header.get("text"):
        text.append(f"{header['text']}\n", style="bold")
    elif header.get("type") in chat.MEDIA_ICONS:
        text.append(f"{chat.media(header['type'], header.get(header['type'], {}))}\n")
    text.append(str(interactive.get("body", {}).get("text", "")))
    footer = interactive.get("footer", {}).get("text")
    if footer:
        text.append(f"\n{footer}", style="dim")
    action = interactive.get("action", {})
    parameters = action.get("parameters", {})
    kind = interactive.get("type")
    if kind == "cta_url":
        label, url = parameters.get("display_text", ""), parameters.get("url", "")
        text.append(f"\n[ 🔗 {label} ] <{url}>", style="cyan")
    elif kind == "location_request_message":
        text.append("\n[ 📍 Send location ]", style="cyan")
    elif kind == "flow":
        flow = parameters.get("flow_id") or parameters.get("flow_name", "")
        screen = parameters.get("flow_action_payload", {}).get("screen", "")
        opens = f"WhatsApp Flow {flow}" + (f", screen {screen}" if screen else "")
        text.append(f"\n[ {parameters.get('flow_cta', '')} ] ({opens})", style="cyan")
    for button in action.get("buttons", []):
        text.append(f"\n[ {button.get('reply', {}).get('title', '')} ]", style="cyan")
    if interactive.get("type") == "list":
        text.append(f"\n[ ☰ {action.get('button', '')} ]", style="cyan")
        for section in action.get("sections", []):
            text.append(f"\n  {section.get('title', '')}", style="bold")
            for row in section.get("rows", []):
                description = row.get("description")
                text.append(f"\n    • {row.get('title', '')}")
                if description:
                    text.append(f" — {description}", style="dim")
    return Panel(text, expand=False, border_style="green")


_MOMENT = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"])


@click.command()
@click.argument("name")
@click.option("--version", type=int, default=0, help="One version (default: all).")
@click.option("--since", type=_MOMENT, default=None, help="From (UTC; default: a week ago).")
@click.option("--until", type=_MOMENT, default=None, help="Until (UTC; default: now).")
@click.pass_context
def stats(
    context: click.Context,
    name: str,
    version: int,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Where customers drop off in NAME: per step, how many entered, went on where, completed,
    and stopped, cancelled, expired, ended or were handed off there (from the event log)."""
    start, end = (t.replace(tzinfo=UTC) if t is not None else None for t in (since, until))
    with _client(context) as flow:
        found = flow.flow_stats(name, version, start, end)
    if context.obj["json"]:
        document(found)
        return
    for line in funnel_lines(found):
        out.print(line, highlight=False, markup=False)


def funnel_lines(found: flow_pb2.GetFlowStatsResponse) -> list[str]:
    """The funnel as lines of text: the totals, then each step with a bar of who entered it."""
    which = f"version {found.version}" if found.version else "all versions"
    lines = [
        f"{found.name} ({which}), {when(found.start_time)} to {when(found.end_time)} UTC",
        f"started {found.started}, completed {found.completed}"
        f" ({_share(found.completed, found.started)})"
        f", cancelled {found.cancelled}, expired {found.expired}, ended {found.ended}"
        f", handed off {found.handed_off}",
    ]
    widest = max((len(s.step) for s in found.steps), default=0)
    top = max([found.started, *(s.entered for s in found.steps)]) or 1
    for step in found.steps:
        bar = "#" * round(20 * step.entered / top)
        spent = (
            f"  median {_spent(step.median_time.ToTimedelta())}"
            if step.HasField("median_time")
            else ""
        )
        lines.append(
            f"  {step.step:<{widest}}  {step.entered:>6} entered  {bar:<20}  "
            f"{_share(step.entered, found.started)}{spent}"
        )
        for exit_ in step.exits:
            lines.append(f"  {'':<{widest}}    -> {exit_.next_step}: {exit_.count}")
        ends = [
            (label, count)
            for label, count in (
                ("completed", step.completed),
                ("stopped here", step.stopped),
                ("cancelled", step.cancelled),
                ("expired", step.expired),
                ("ended", step.ended),
                ("handed off", step.handed_off),
            )
            if count
        ]
        if ends:
            said = ", ".join(f"{label} {count}" for label, count in ends)
            lines.append(f"  {'':<{widest}}    {said}")
    if not found.started and not any(s.entered for s in found.steps):
        lines.append("  (no conversations in this range)")
    return lines


def _spent(time: timedelta) -> str:
    """A median time in a glance: 42s, 3m 05s, 2h 10m."""
    seconds = round(time.total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


COMMANDS: Sequence[click.Command] = (publish, rollback, versions, changes, preview, stats)
