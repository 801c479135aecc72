"""Scripted conversation tests: `*.test.json` files of what a customer sends and what the bot must
answer, run turn by turn in flowsvc's sandbox (RunSandbox), so nothing reaches a customer.

A file names a template and holds tests; each test is a list of turns:

    {"template": "new_order",
     "tests": [{"name": "two coffees",
                "turns": [{"start": true, "expect": {"options": ["Coffee", "Tea", ...]}},
                          {"tap": "Coffee", "expect": {"step": "quantity"}},
                          {"send": "2", "expect": {"text": "2 x Coffee = $7.00"}},
                          {"tap": "yes", "expect": {"outcome": "completed",
                                                    "result": {"total": "7.00"}}}]}]}

A turn sends one of: "start" (start the template, optionally with "context"), "send" (a text),
"tap" (a button or row offered by the last message, by id or title), "media" (a message type
the bot does not read, e.g. "image"); "silence_minutes" lets time pass before it, and the step
timers that come due meanwhile fire first (a turn of "silence_minutes" alone: the customer says
nothing, only the timers answer, e.g. a reminder: outcome "reminded"). Sandbox time counts from
the customer's last message: silences of 10 and then 30 minutes reach the 10th and the 30th minute
of one silence. A conversation waiting in a call step (the sandbox runs no call) gets the call's
result from a "call_result" turn: {"status": 200, "json": {...}}, {"status": 502}, {"timeout":
true} or {"failed": true} (menuflow/call_results.py). Its "expect"
may check: "text" (a text, or texts, each contained in some reply), "matches" (a regular
expression searched in the replies), "options" (the titles the last message offers, in order),
"step" and "flow" (where the conversation waits), "context" (values it holds), "outcome"
(started, advanced, invalid_input, waiting, completed, cancelled, ...), "result" (values of the
stored result), "ended" (true when no conversation is left), "call" (the call the step entered
would queue: "endpoint", "method", "path", "body" as given; false: none).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from google.protobuf import duration_pb2, json_format

from menuflow.call_results import describe, sandbox_call_result
from menuflow.v1 import flow_pb2

TEST_SUFFIX = ".test.json"
INPUTS = ("start", "send", "tap", "media", "call_result")
TURN_KEYS = frozenset({*INPUTS, "context", "silence_minutes", "expect"})
EXPECT_KEYS = frozenset(
    {"text", "matches", "options", "step", "flow", "context", "outcome", "result", "ended", "call"}
)
OUTCOMES = {
    name.removeprefix("OUTCOME_").lower(): number
    for name, number in flow_pb2.Outcome.items()
    if number
}

RunTurn = Callable[[flow_pb2.RunSandboxRequest], flow_pb2.RunSandboxResponse]
"""One sandbox turn: FlowClient.run_sandbox, or a stub's RunSandbox."""
Steps = Callable[[str], set[str]]
"""The steps of a template as the tests run it (to refuse a script naming a missing step)."""


class ScriptError(ValueError):
    """A test file that cannot be run as written (bad JSON, unknown keys, a missing step)."""


class TurnRefused(Exception):
    """The sandbox refused a turn (offline runs; over gRPC it is a MenuflowError)."""


@dataclass(frozen=True)
class Turn:
    number: int
    data: Mapping[str, Any]

    @property
    def label(self) -> str:
        said = next(
            (f"{key} {_shown(key, self.data[key])}" for key in INPUTS if key in self.data), ""
        )
        if "start" in self.data:
            said = "start"
        silence = self.data.get("silence_minutes")
        if not said:
            return f"turn {self.number} (silence for {silence} min)"
        return f"turn {self.number} ({said}{f' after {silence} min' if silence else ''})"


def _shown(key: str, value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if key == "call_result" else repr(value)


@dataclass(frozen=True)
class Script:
    """One test of a file."""

    path: Path
    template: str
    name: str
    turns: tuple[Turn, ...]


@dataclass
class Outcome:
    """What running one test gave: failures (empty: passed), and the transcript."""

    script: Script
    failures: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def test_files(paths: Iterable[str | Path]) -> list[Path]:
    """The `*.test.json` files named, and those in (and under) the folders named."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files += sorted(path.rglob(f"*{TEST_SUFFIX}")) if path.is_dir() else [path]
    return files


def load(path: Path) -> list[Script]:
    """The tests of one file, checked for shape; ScriptError says what is wrong and where."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ScriptError(f"{path}: not a JSON file ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("template"), str):
        raise ScriptError(f'{path}: a test file is an object with "template" and "tests"')
    tests = data.get("tests")
    if not isinstance(tests, list) or not tests:
        raise ScriptError(f'{path}: "tests" must be a non-empty list')
    scripts = []
    for index, test in enumerate(tests):
        where = f"{path}: tests[{index}]"
        if not isinstance(test, dict) or not isinstance(test.get("turns"), list):
            raise ScriptError(f'{where}: a test is an object with "name" and "turns"')
        turns = []
        for number, turn in enumerate(test["turns"], start=1):
            turns.append(Turn(number, _checked_turn(turn, f"{where}.turns[{number - 1}]")))
        scripts.append(
            Script(path, data["template"], str(test.get("name", f"test {index + 1}")), tuple(turns))
        )
    return scripts


def _checked_turn(turn: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(turn, dict):
        raise ScriptError(f"{where}: a turn is an object")
    unknown = sorted(set(turn) - TURN_KEYS)
    if unknown:
        raise ScriptError(f"{where}: unknown keys {unknown} (a turn has {sorted(TURN_KEYS)})")
    said = [key for key in INPUTS if key in turn]
    if len(said) > 1 or (not said and not turn.get("silence_minutes")):
        raise ScriptError(
            f"{where}: a turn has exactly one of {list(INPUTS)}, or only silence_minutes"
        )
    expect = turn.get("expect", {})
    if not isinstance(expect, dict):
        raise ScriptError(f'{where}: "expect" is an object')
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise ScriptError(f"{where}.expect: unknown keys {unknown} (known: {sorted(EXPECT_KEYS)})")
    outcome = expect.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise ScriptError(f"{where}.expect.outcome: {outcome!r} is not one of {sorted(OUTCOMES)}")
    if "call_result" in turn:
        try:
            sandbox_call_result(turn["call_result"])
        except ValueError as error:
            raise ScriptError(f"{where}.call_result: {error}") from None
    call = expect.get("call")
    if call is not None and call is not False and not isinstance(call, dict):
        raise ScriptError(f'{where}.expect.call: an object ("endpoint", "path", ...) or false')
    silence = turn.get("silence_minutes", 0)
    if isinstance(silence, bool) or not isinstance(silence, int | float) or silence < 0:
        raise ScriptError(f"{where}.silence_minutes: a number of minutes, 0 or more")
    return dict(turn)


def check_steps(script: Script, steps: Steps) -> None:
    """Refuse a script whose expectations name a step its template does not have."""
    for turn in script.turns:
        expect = turn.data.get("expect", {})
        if "step" not in expect:
            continue
        flow = expect.get("flow", script.template)
        known = steps(flow)
        if expect["step"] not in known:
            raise ScriptError(
                f"{script.path}: {script.name}: {turn.label}: template {flow!r} has no step "
                f"{expect['step']!r} (it has {', '.join(sorted(known))})"
            )


def run(
    script: Script,
    run_turn: RunTurn,
    *,
    version: int = 0,
    templates: Sequence[flow_pb2.TemplateDefinition] = (),
) -> Outcome:
    """Run one test turn by turn; stop at the first turn that fails."""
    outcome = Outcome(script)
    conversation: flow_pb2.SandboxConversation | None = None
    offered: list[tuple[str, str]] = []
    for turn in script.turns:
        request = flow_pb2.RunSandboxRequest(
            template_name=script.template,
            version=version,
            templates=templates,
            conversation=conversation,
            contact_name="Test Customer",
        )
        data = turn.data
        if data.get("silence_minutes"):
            request.silence.CopyFrom(
                duration_pb2.Duration(seconds=int(float(data["silence_minutes"]) * 60))
            )
        if "start" in data:
            if conversation is not None:
                request.ClearField("conversation")
            request.start_context.update(data.get("context", {}))
        elif "send" in data:
            request.text = str(data["send"])
        elif "media" in data:
            request.unsupported_type = str(data["media"])
        elif "call_result" in data:
            request.call_result.CopyFrom(sandbox_call_result(data["call_result"]))
        elif "tap" not in data:  # silence alone: only the step's timers answer
            if conversation is None:
                outcome.failures.append(f"{turn.label}: no conversation runs to be silent in")
                return outcome
        else:
            chosen = _option(offered, str(data["tap"]))
            if chosen is None:
                titles = ", ".join(repr(title) for _, title in offered) or "none"
                outcome.failures.append(
                    f"{turn.label}: no button or row {data['tap']!r} is offered (offered: {titles})"
                )
                return outcome
            request.selection.CopyFrom(flow_pb2.Selection(id=chosen[0], title=chosen[1]))
        response = run_turn(request)
        bodies = [json_format.MessageToDict(body) for body in response.messages]
        outcome.transcript.append(f"customer: {turn.label}")
        outcome.transcript += ["bot: " + _text(body).replace("\n", "\n     ") for body in bodies]
        if response.HasField("call"):
            outcome.transcript.append(f"bot calls: {describe(response.call)}")
        conversation = response.conversation if response.HasField("conversation") else None
        offered = _options(bodies) or ([] if bodies else offered)
        failed = _compare(turn, data.get("expect", {}), response, bodies, offered, conversation)
        if failed:
            outcome.failures += failed
            return outcome
    return outcome


def _compare(
    turn: Turn,
    expect: Mapping[str, Any],
    response: flow_pb2.RunSandboxResponse,
    bodies: list[dict[str, Any]],
    offered: list[tuple[str, str]],
    conversation: flow_pb2.SandboxConversation | None,
) -> list[str]:
    texts = [_text(body) for body in bodies]
    shown = "\n".join(f"      | {line}" for text in texts for line in text.splitlines()) or (
        "      | (no reply)"
    )
    failures: list[str] = []

    def fail(what: str, got: str) -> None:
        failures.append(f"{turn.label}: expected {what}\n    got {got}")

    wanted = expect.get("text", [])
    for piece in [wanted] if isinstance(wanted, str) else wanted:
        if not any(str(piece) in text for text in texts):
            fail(f"a reply containing {piece!r}", f"these replies:\n{shown}")
    if "matches" in expect and not any(re.search(expect["matches"], t) for t in texts):
        fail(f"a reply matching /{expect['matches']}/", f"these replies:\n{shown}")
    if "options" in expect and [title for _, title in offered] != list(expect["options"]):
        fail(f"options {list(expect['options'])}", str([title for _, title in offered]))
    if "outcome" in expect and response.outcome != OUTCOMES[expect["outcome"]]:
        got = flow_pb2.Outcome.Name(response.outcome).removeprefix("OUTCOME_").lower()
        fail(f"outcome {expect['outcome']!r}", repr(got))
    if "ended" in expect and (conversation is None) != bool(expect["ended"]):
        fail(
            "the conversation to end" if expect["ended"] else "the conversation to go on",
            "it ended" if conversation is None else f"it waits in step {conversation.step!r}",
        )
    for key in ("step", "flow"):
        if key in expect:
            where = getattr(conversation, key) if conversation is not None else None
            if where != expect[key]:
                fail(f"{key} {expect[key]!r}", "no conversation" if where is None else repr(where))
    if "context" in expect:
        have = json_format.MessageToDict(conversation.context) if conversation else {}
        failures += _subset(turn, "context", expect["context"], have)
    if "result" in expect:
        have = json_format.MessageToDict(response.result) if response.HasField("result") else {}
        failures += _subset(turn, "result", expect["result"], have)
    if "call" in expect:
        failures += _call(turn, expect["call"], response)
    return failures


def _call(turn: Turn, expected: Any, response: flow_pb2.RunSandboxResponse) -> list[str]:
    """expect.call: the call the step queues (false: none), its fields as given."""
    if not response.HasField("call"):
        return [] if expected is False else [f"{turn.label}: expected a call\n    got none"]
    if expected is False:
        return [f"{turn.label}: expected no call\n    got {describe(response.call)}"]
    call = response.call
    have = {
        "endpoint": call.endpoint,
        "method": call.method,
        "path": call.path,
        "body": json.loads(call.body_json) if call.body_json else None,
    }
    return _subset(turn, "call", expected, have)


def _subset(turn: Turn, what: str, expected: Mapping[str, Any], have: dict[str, Any]) -> list[str]:
    wrong = []
    for key, value in expected.items():
        got = have.get(key, "(missing)")
        if _plain(got) != _plain(value):
            wrong.append(f"{turn.label}: expected {what}.{key} = {value!r}\n    got {got!r}")
    return wrong


def _plain(value: Any) -> Any:
    """Struct numbers are floats: 2.0 and 2 are the same value."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _option(offered: list[tuple[str, str]], wanted: str) -> tuple[str, str] | None:
    return next((o for o in offered if wanted in o), None)


def _options(bodies: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (id, title) options of the last interactive message."""
    for body in reversed(bodies):
        interactive = body.get("interactive")
        if not interactive:
            continue
        action = interactive.get("action", {})
        if interactive.get("type") == "button":
            return [(b["reply"]["id"], b["reply"]["title"]) for b in action.get("buttons", [])]
        return [
            (row["id"], row["title"])
            for section in action.get("sections", [])
            for row in section.get("rows", [])
        ]
    return []


def _text(body: dict[str, Any]) -> str:
    if body.get("type") == "text":
        return str(body.get("text", {}).get("body", ""))
    interactive = body.get("interactive", {})
    parts = [
        interactive.get("header", {}).get("text"),
        interactive.get("body", {}).get("text"),
        interactive.get("footer", {}).get("text"),
    ]
    return "\n".join(str(part) for part in parts if part)


def junit(outcomes: Sequence[Outcome], errors: Sequence[str]) -> str:
    """The outcomes as JUnit XML, one testsuite per file, for CI systems."""
    root = ElementTree.Element("testsuites", name="menuflow")
    by_file: dict[Path, list[Outcome]] = {}
    for outcome in outcomes:
        by_file.setdefault(outcome.script.path, []).append(outcome)
    for path, results in by_file.items():
        suite = ElementTree.SubElement(
            root,
            "testsuite",
            name=str(path),
            tests=str(len(results)),
            failures=str(sum(not r.passed for r in results)),
        )
        for result in results:
            case = ElementTree.SubElement(
                suite, "testcase", classname=result.script.template, name=result.script.name
            )
            if not result.passed:
                failure = ElementTree.SubElement(case, "failure", message=result.failures[0])
                failure.text = "\n".join([*result.failures, "", *result.transcript])
    if errors:
        suite = ElementTree.SubElement(
            root, "testsuite", name="scripts", tests=str(len(errors)), errors=str(len(errors))
        )
        for error in errors:
            case = ElementTree.SubElement(suite, "testcase", name=error.split(":")[0])
            ElementTree.SubElement(case, "error", message=error)
    return ElementTree.tostring(root, encoding="unicode", xml_declaration=True)
