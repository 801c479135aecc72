"""`menuflow test PATHS...`: run scripted conversation tests (menuflow.flowtest) in flowsvc's
sandbox; a readable diff for each failure, exit 1 if any fails, JUnit XML for CI on request."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click
from rich.markup import escape

from menuflow.cli.output import err, out
from menuflow.cli.templates import read, template_files
from menuflow.client import FlowClient, MenuflowError, NotFound, to_dict
from menuflow.client.requests import template_definition
from menuflow.flowtest import (
    Outcome,
    RunTurn,
    Script,
    ScriptError,
    TurnRefused,
    check_steps,
    junit,
    load,
    run,
    test_files,
)
from menuflow.v1 import flow_pb2


def offline_runner(definitions: Sequence[flow_pb2.TemplateDefinition]) -> RunTurn:
    """Sandbox turns run here, by flowsvc's engine, against the template files alone."""
    from flowsvc.engine import EngineConfig
    from flowsvc.errors import FlowError
    from flowsvc.rpc.authoring import sandbox_response, sandbox_turn
    from flowsvc.rpc.convert import template_definition as from_message
    from flowsvc.service.sandbox import OfflineSandbox

    try:
        sandbox = OfflineSandbox([from_message(d) for d in definitions], EngineConfig())
    except FlowError as error:
        raise click.ClickException(f"the template files cannot run: {error}") from None

    def run_turn(request: flow_pb2.RunSandboxRequest) -> flow_pb2.RunSandboxResponse:
        try:
            return sandbox_response(sandbox.run(sandbox_turn(request)))
        except FlowError as error:
            raise TurnRefused(f"{type(error).__name__}: {error}") from None

    return run_turn


def run_tests(
    flow: FlowClient | None,
    paths: Sequence[str],
    *,
    files: Sequence[str] = (),
    versions: dict[str, int] | None = None,
) -> tuple[list[Outcome], list[str]]:
    """Every test of the files in `paths`: their outcomes, and the scripts that could not run.
    `files`: template files to run unsaved instead of the stored versions; `versions`: the
    version to run per template (default: the latest, drafts included). Without a client
    (`flow` None) the tests run offline, against `files` only."""
    found = test_files(paths)
    if not found:
        raise click.UsageError(f"no scripted tests (*.test.json) in {', '.join(paths)}")
    definitions = (
        [template_definition(read(path)) for path in template_files(files)] if files else []
    )
    unsaved = {d.name: d for d in definitions}
    run_turn = flow.run_sandbox if flow is not None else offline_runner(definitions)
    steps_cache: dict[str, set[str]] = {}

    def steps(name: str) -> set[str]:
        if name not in steps_cache:
            if name in unsaved:
                menu = to_dict(unsaved[name].menu_structure)
            elif flow is None:
                menu = {}
            else:
                try:
                    menu = to_dict(flow.get_template(name, (versions or {}).get(name, 0)))
                    menu = menu.get("menu_structure", {})
                except NotFound:
                    menu = {}
            steps_cache[name] = {"initial", *menu.get("steps", {})}
        return steps_cache[name]

    outcomes: list[Outcome] = []
    errors: list[str] = []
    for path in found:
        try:
            scripts = load(path)
            for script in scripts:
                check_steps(script, steps)
        except ScriptError as error:
            errors.append(str(error))
            continue
        for script in scripts:
            try:
                outcomes.append(
                    run(
                        script,
                        run_turn,
                        version=(versions or {}).get(script.template, 0),
                        templates=definitions if flow is not None else (),
                    )
                )
            except TurnRefused as error:
                errors.append(f"{path}: {script.name}: {error}")
            except MenuflowError as error:
                detail = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
                errors.append(
                    f"{path}: {script.name}: {error.code.name}: {error.message}"
                    + (f" ({detail})" if detail else "")
                )
    return outcomes, errors


def report(outcomes: Sequence[Outcome], errors: Sequence[str]) -> bool:
    """Print each test's verdict, each failure with the conversation so far; True if all pass."""
    for outcome in outcomes:
        where = f"{outcome.script.path} › {outcome.script.name}"
        if outcome.passed:
            out.print(
                f"[green]PASS[/green] {escape(where)}", markup=True, highlight=False, soft_wrap=True
            )
            continue
        out.print(f"[red]FAIL[/red] {escape(where)}", markup=True, highlight=False, soft_wrap=True)
        for failure in outcome.failures:
            out.print(f"  {failure}", markup=False, soft_wrap=True)
        out.print("  conversation:", markup=False, soft_wrap=True)
        for line in outcome.transcript:
            out.print(f"    {line}", markup=False, soft_wrap=True)
    for error in errors:
        err.print(f"[red]ERROR[/red] {escape(error)}", markup=True, highlight=False, soft_wrap=True)
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    out.print(
        f"{passed} passed, {failed} failed, {len(errors)} errors", markup=False, soft_wrap=True
    )
    return not failed and not errors


@click.command("test")
@click.argument("paths", nargs=-1, required=True)
@click.option("--version", type=int, default=0, help="Run every test's template at this version.")
@click.option(
    "--files",
    multiple=True,
    help="Template files or folders to run unsaved, instead of the stored versions.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="Run here, by flowsvc's engine, against the --files alone (no flowsvc needed).",
)
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML.")
@click.pass_context
def test(
    context: click.Context,
    paths: tuple[str, ...],
    version: int,
    files: tuple[str, ...],
    offline: bool,
    junit_path: str | None,
) -> None:
    """Run the scripted conversation tests (*.test.json) in PATHS in the sandbox, against the
    latest version of each template (drafts included) unless told otherwise."""
    if offline:
        if not files or version:
            raise click.UsageError("--offline runs template --files, not stored versions")
        outcomes, errors = run_tests(None, paths, files=files)
    else:
        with FlowClient(context.obj["connection"]) as flow:
            versions = None
            if version:
                names = {s.template for p in test_files(paths) for s in _scripts(p)}
                versions = dict.fromkeys(names, version)
            outcomes, errors = run_tests(flow, paths, files=files, versions=versions)
    if junit_path:
        Path(junit_path).write_text(junit(outcomes, errors), encoding="utf-8")
    if not report(outcomes, errors):
        raise SystemExit(1)


def _scripts(path: Path) -> list[Script]:
    try:
        return load(path)
    except ScriptError:
        return []
