"""Checks on a step's `rules`: each `when` parses and reads only keys an earlier step can set,
each `go` is a target, and steps of rules that send nothing never pass the customer in a circle.

"Earlier" is by the template's graph: a key may be read where some step that leads (by replies,
rules or next_step, any number of steps back) to the rule's step sets it, or the rule's own step
when the customer answers it first; keys in `context_keys` and built-in names are always known.
"""

from collections.abc import Collection, Mapping
from typing import Any

from flowsvc.engine.template import INITIAL
from flowsvc.validation.context import expression_names
from flowsvc.validation.targets import check_target, step_targets
from flowsvc.validation.violation import Violation, check_keys, clip, kind, suggest

RULE_KEYS = ("when", "go")
MAX_RULES = 50
# A step of rules that sends nothing reads no reply: these fields would never be used.
UNUSED_WHEN_QUIET = (
    "next_steps",
    "validation",
    "context_key",
    "error_message",
    "set",
    "compute",
    "lookup",
)


def routes_at_once(name: str, step: Mapping[Any, Any]) -> bool:
    """A step with rules and no message (the engine's Step.routes_at_once, on the raw JSON)."""
    quiet = not any(key in step for key in ("prompt", "type", "handoff"))
    return (
        name != INITIAL and "rules" in step and quiet and step.get("end_conversation") is not True
    )


def check_rules(
    name: str,
    step: Mapping[Any, Any],
    path: str,
    *,
    steps: Mapping[Any, Any],
    known: Collection[str],
    earlier: Collection[str],
    later: Collection[str],
    out: list[Violation],
    own: str,
) -> None:
    """`rules`: a list of {"when": expression, "go": target}, checked in order."""
    rules = step["rules"]
    rules_path = f"{path}.rules"
    if not isinstance(rules, list) or not rules:
        out.append(
            Violation(
                rules_path,
                'must be a non-empty list like [{"when": "guests > 8", "go": "large_party"}], '
                f"not {kind(rules)}",
            )
        )
        return
    if len(rules) > MAX_RULES:
        out.append(Violation(rules_path, f"has {len(rules)} rules; at most {MAX_RULES} allowed"))
    for index, rule in enumerate(rules):
        rule_path = f"{rules_path}[{index}]"
        if not isinstance(rule, Mapping):
            out.append(
                Violation(rule_path, f"must be an object with when and go, not {kind(rule)}")
            )
            continue
        check_keys(rule, RULE_KEYS, rule_path, out)
        for key in RULE_KEYS:
            if key not in rule:
                out.append(Violation(f"{rule_path}.{key}", "is missing"))
        if "go" in rule:
            check_target(rule["go"], f"{rule_path}.go", steps, known, out, own=own)
        if "when" in rule:
            _check_when(rule["when"], f"{rule_path}.when", earlier, later, out)
    if routes_at_once(name, step):
        _check_quiet(name, step, path, out)


def _check_when(
    when: object,
    path: str,
    earlier: Collection[str],
    later: Collection[str],
    out: list[Violation],
) -> None:
    if not isinstance(when, str) or not when.strip():
        out.append(Violation(path, f"must be a non-empty expression string, not {kind(when)}"))
        return
    used, problem = expression_names(when)
    if problem:
        out.append(Violation(path, f"expression '{clip(when)}' {problem}"))
        return
    for key in used:
        if key in earlier:
            continue
        if key in later:
            reason = (
                f"expression reads '{key}', which only steps after this one set: no step "
                "before it can have stored it"
            )
        else:
            reason = (
                f"expression reads '{key}', which no step before this one can set (no "
                f"context_key, set or compute key '{key}', and it is not in context_keys)"
            )
        out.append(Violation(path, reason + suggest(key, earlier)))


def _check_quiet(name: str, step: Mapping[Any, Any], path: str, out: list[Violation]) -> None:
    if "next_step" not in step:
        out.append(
            Violation(
                f"{path}.next_step",
                f"is missing: step '{clip(name)}' sends nothing and moves on at once, so it "
                "needs next_step, where the customer goes when no rule holds",
            )
        )
    for key in UNUSED_WHEN_QUIET:
        if key in step:
            out.append(
                Violation(
                    f"{path}.{key}",
                    f"is never used: step '{clip(name)}' has rules and no message, so it moves "
                    "on at once and gets no reply",
                )
            )


def earlier_names(
    steps: Mapping[Any, Any], own: Mapping[str, frozenset[str]], always: frozenset[str]
) -> dict[str, frozenset[str]]:
    """For each step with rules, the keys set before its rules run: by every step that leads to
    it, and by the step itself when it waits for a reply (its answer is stored before the rules
    decide). Only steps with rules are walked back, so a long template without rules costs one
    pass, not a walk per step."""
    before: dict[str, set[str]] = {str(name): set() for name in steps}
    for name, step in steps.items():
        for target in step_targets(step):
            if target in before and target != name:
                before[target].add(str(name))
    found: dict[str, frozenset[str]] = {}
    for name, step in steps.items():
        if not (isinstance(step, Mapping) and "rules" in step):
            continue
        seen: set[str] = set()
        pending = list(before.get(str(name), ()))
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(before.get(current, ()))
        if isinstance(step, Mapping) and not routes_at_once(str(name), step):
            seen.add(str(name))
        keys = set(always)
        for ancestor in seen:
            keys |= own.get(ancestor, frozenset())
        found[str(name)] = frozenset(keys)
    return found


def entering_names(
    steps: Mapping[Any, Any],
    own: Mapping[str, frozenset[str]],
    always: frozenset[str],
    wanted: Collection[str],
) -> dict[str, frozenset[str]]:
    """For each step in `wanted`, the keys set before the customer arrives in it (by every
    step that leads to it; not by the step itself, whose answer comes after its message)."""
    before: dict[str, set[str]] = {str(name): set() for name in steps}
    for name, step in steps.items():
        for target in step_targets(step):
            if target in before and target != name:
                before[target].add(str(name))
    found: dict[str, frozenset[str]] = {}
    for name in wanted:
        seen: set[str] = set()
        pending = list(before.get(name, ()))
        while pending:
            current = pending.pop()
            if current not in seen:
                seen.add(current)
                pending.extend(before.get(current, ()))
        keys = set(always)
        for ancestor in seen:
            keys |= own.get(ancestor, frozenset())
        found[name] = frozenset(keys)
    return found


def check_quiet_cycles(steps: Mapping[Any, Any], out: list[Violation]) -> None:
    """Steps of rules without a message that lead to each other in a circle would pass a
    customer round it without end (the engine stops after a bounded number of hops)."""
    quiet = {
        str(name)
        for name, step in steps.items()
        if isinstance(step, Mapping) and routes_at_once(str(name), step)
    }
    reported: set[str] = set()
    for start in sorted(quiet):
        cycle = _cycle_from(start, steps, quiet)
        if cycle is None or reported & set(cycle):
            continue
        reported |= set(cycle)
        loop = " -> ".join(f"'{clip(s)}'" for s in (*cycle, cycle[0]))
        out.append(
            Violation(
                f"menu_structure.steps.{cycle[0]}.rules",
                f"steps of rules without a message lead in a circle ({loop}): a customer would "
                "be passed round it without end; give one of them a message, or break the circle",
            )
        )


def _cycle_from(start: str, steps: Mapping[Any, Any], quiet: set[str]) -> list[str] | None:
    """A path of quiet steps from `start` back to it, if there is one (depth-first)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    visited: set[str] = set()
    while stack:
        current, path = stack.pop()
        for target in step_targets(steps.get(current)):
            if target == start:
                return path
            if target in quiet and target not in visited:
                visited.add(target)
                stack.append((target, [*path, target]))
    return None
