"""`menuflow templates`: push, pull, validate (offline), diff and list template files.

A template file is one template as JSON: {"name", "trigger_keywords", "is_active",
"menu_structure"} (the files in flowsvc/default_templates/ are examples).
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import click
from rich.progress import track

from menuflow.cli.authoring import COMMANDS
from menuflow.cli.output import count, document, err, out, table
from menuflow.client import FlowClient, InvalidArgument, NotFound, to_dict
from menuflow.v1 import flow_pb2
from menuflow.values import integral

_IN_IMPORT = re.compile(r"^templates\[(\d+)\]\.(.*)$")


TEST_SUFFIX = ".test.json"


def template_files(paths: Sequence[str]) -> list[Path]:
    """The .json files named, and those in the folders named (but scripted tests, *.test.json),
    in name order."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files += sorted(p for p in path.glob("*.json") if not p.name.endswith(TEST_SUFFIX))
        else:
            files.append(path)
    if not files:
        raise click.UsageError("no template files (*.json) found")
    return files


def read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise click.ClickException(f"{path}: not a JSON file ({error})") from None
    if not isinstance(data, dict):
        raise click.ClickException(f"{path}: a template file holds one JSON object")
    return data


def as_file(template: flow_pb2.Template) -> dict[str, Any]:
    """A live template as a template file holds it."""
    return {
        "name": template.name,
        "trigger_keywords": list(template.trigger_keywords),
        "is_active": template.is_active,
        "menu_structure": integral(to_dict(template)["menu_structure"]),
    }


def dumps(data: dict[str, Any], *, sort_keys: bool = False) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=sort_keys) + "\n"


def warn(path: Path, warnings: Sequence[str]) -> None:
    """Say what is legal but probably wrong in a template file (it does not fail the command)."""
    if warnings:
        err.print(f"[yellow]{path}[/yellow]: {count(len(warnings), 'warning')}", markup=True)
        for warning in warnings:
            err.print(f"  {warning}", markup=False)


def _client(context: click.Context) -> FlowClient:
    return FlowClient(context.obj["connection"])


def live(flow: FlowClient, template: flow_pb2.Template) -> flow_pb2.Template:
    """The live version of a template read at its latest version (which may be a draft)."""
    if template.live_version and template.live_version != template.version:
        return flow.get_template(template.name, template.live_version)
    return template


@click.group()
def templates() -> None:
    """Template files: push, pull, validate, diff, list."""


@templates.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--draft", is_flag=True, help="Save new versions as drafts (publish makes them live)."
)
@click.pass_context
def push(context: click.Context, paths: tuple[str, ...], draft: bool) -> None:
    """Create or update the templates in PATHS (files or folders) as one set: every file is
    checked first, and nothing is written unless all are valid."""
    files = template_files(paths)
    definitions = [read(path) for path in track(files, description="reading", console=err)]
    with _client(context) as flow:
        try:
            imported = flow.import_templates(definitions, draft=draft)
        except InvalidArgument as invalid:
            by_file: dict[Path, list[str]] = defaultdict(list)
            for violation in invalid.violations:
                match = _IN_IMPORT.match(violation.field)
                where = files[int(match[1])] if match else Path("(all)")
                field = match[2] if match else violation.field
                by_file[where].append(f"{field}: {violation.description}")
            for path, problems in by_file.items():
                err.print(f"[red]{path}[/red]: {count(len(problems), 'problem')}", markup=True)
                for problem in problems:
                    err.print(f"  {problem}", markup=False)
            raise SystemExit(1) from None
    for path, item in zip(files, imported, strict=True):
        warn(path, [f"{w.field}: {w.description}" for w in item.warnings])
    actions = {1: "created", 2: "updated", 3: "unchanged"}
    if context.obj["json"]:
        document([to_dict(item) for item in imported])
        return
    table(
        "pushed",
        ("file", "template", "version", "action"),
        (
            (path, item.name, item.version, actions.get(item.action, "?"))
            for path, item in zip(files, imported, strict=True)
        ),
    )


@templates.command()
@click.argument("folder", type=click.Path(file_okay=False))
@click.argument("names", nargs=-1)
@click.pass_context
def pull(context: click.Context, folder: str, names: tuple[str, ...]) -> None:
    """Write the live templates (all, or NAMES) as FOLDER/<name>.json."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    with _client(context) as flow:
        latest = [flow.get_template(name) for name in names] if names else flow.list_templates()
        found = [live(flow, template) for template in latest]
    for template in track(found, description="writing", console=err):
        (target / f"{template.name}.json").write_text(dumps(as_file(template)), encoding="utf-8")
    out.print(f"{len(found)} templates written to {target}")


@templates.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--known", multiple=True, help="A template the files may target that is not among them."
)
def validate(paths: tuple[str, ...], known: tuple[str, ...]) -> None:
    """Check template files offline, as flowsvc would: every problem, per file."""
    from flowsvc.validation import review_template

    files = template_files(paths)
    loaded = [(path, read(path)) for path in files]
    names = {str(data.get("name")) for _, data in loaded} | set(known)
    failed = 0
    for path, data in loaded:
        found = review_template(
            cast(str, data.get("name")),  # validation says so when it is not a string
            data.get("trigger_keywords", []),
            data.get("menu_structure"),
            known_templates=names,
        )
        problems = [problem for problem in found if not problem.warning]
        warn(path, [f"{w.field}: {w.description}" for w in found if w.warning])
        if problems:
            failed += 1
            err.print(f"[red]{path}[/red]: {count(len(problems), 'problem')}", markup=True)
            for problem in problems:
                err.print(f"  {problem.field}: {problem.description}", markup=False)
        else:
            out.print(f"{path}: valid")
    if failed:
        raise SystemExit(1)


@templates.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
def diff(context: click.Context, file: str) -> None:
    """Show how FILE differs from the live version of its template (exit 1 if it does)."""
    local = read(Path(file))
    with _client(context) as flow:
        try:
            current = live(flow, flow.get_template(str(local.get("name", ""))))
            shown = dumps(as_file(current), sort_keys=True)
        except NotFound:
            shown = ""
    lines = list(
        difflib.unified_diff(
            shown.splitlines(keepends=True),
            dumps({"is_active": True, **local}, sort_keys=True).splitlines(keepends=True),
            fromfile=f"live/{local.get('name')}",
            tofile=file,
        )
    )
    if not lines:
        out.print(f"{file}: the same as the live version")
        return
    click.echo("".join(lines), nl=False)
    raise SystemExit(1)


@templates.command("list")
@click.pass_context
def list_(context: click.Context) -> None:
    """The live templates, their latest versions."""
    with _client(context) as flow:
        found = flow.list_templates()
    if context.obj["json"]:
        document([to_dict(t) for t in found])
        return
    table(
        f"{len(found)} templates",
        ("name", "version", "active", "keywords"),
        ((t.name, t.version, t.is_active, ", ".join(t.trigger_keywords)) for t in found),
    )


for _command in COMMANDS:
    templates.add_command(_command)
