"""Where a template's steps lead: each target names a step or a template, every step is reached."""

from collections.abc import Collection, Mapping
from typing import Any

from flowsvc.engine.template import FLOW_PREFIX, GUIDE_FLOW_SUFFIX, INITIAL
from flowsvc.validation.violation import Violation, clip, closest, quote


def check_target(
    target: object,
    path: str,
    steps: Mapping[Any, Any],
    known: Collection[str],
    out: list[Violation],
    *,
    own: str = "",
) -> None:
    """A target is a step of this template, flow:<template>, or the guide's <template>_flow.

    `own` (the template's name) is a valid target but never a hint: a typo is not a request to
    start the template over.
    """
    if not isinstance(target, str) or not target:
        out.append(
            Violation(path, f"must be a step name or 'flow:<template>', not {quote(target)}")
        )
        return
    if target in steps:
        return
    step_names = [step for step in steps if isinstance(step, str)]
    others = [template for template in known if template != own]
    if target.startswith(FLOW_PREFIX):
        wanted = target[len(FLOW_PREFIX) :]
        if wanted in known:
            return
        match = closest(wanted, others)
        hint = f" (did you mean 'flow:{match}'?)" if match else ""
        out.append(
            Violation(path, f"target '{clip(target)}' names no template '{clip(wanted)}'{hint}")
        )
        return
    base = target[: -len(GUIDE_FLOW_SUFFIX)] if target.endswith(GUIDE_FLOW_SUFFIX) else ""
    if base in known:
        return
    if target in known:
        out.append(
            Violation(
                path,
                f"target '{clip(target)}' names no step of this template; to switch to the "
                f"template '{clip(target)}', write 'flow:{clip(target)}'",
            )
        )
        return
    step_match = closest(target, step_names)
    template_match = closest(base or target, others)
    if step_match:
        hint = f" (did you mean '{step_match}'?)"
    elif template_match:
        hint = f" (did you mean 'flow:{template_match}'?)"
    else:
        hint = ""
    out.append(
        Violation(
            path, f"target '{clip(target)}' names no step of this template and no template{hint}"
        )
    )


def template_targets(menu_structure: Mapping[str, Any]) -> set[str]:
    """Names of the templates this one switches to (flow:<name> and the guide's <name>_flow).

    Read from the structure alone, so a self-reference appears too; callers asking "who targets
    template X?" look at the other templates.
    """
    steps = menu_structure.get("steps") if isinstance(menu_structure, Mapping) else None
    if not isinstance(steps, Mapping):
        return set()
    targets: set[str] = set()
    for step in steps.values():
        for target in step_targets(step):
            if target in steps:
                continue
            if target.startswith(FLOW_PREFIX) and len(target) > len(FLOW_PREFIX):
                targets.add(target[len(FLOW_PREFIX) :])
            elif target.endswith(GUIDE_FLOW_SUFFIX) and len(target) > len(GUIDE_FLOW_SUFFIX):
                targets.add(target[: -len(GUIDE_FLOW_SUFFIX)])
    return targets


def step_targets(step: object) -> list[str]:
    """The string targets of a step's next_step and next_steps, whatever else it holds."""
    if not isinstance(step, Mapping):
        return []
    found = [step.get("next_step")]
    rules = step.get("rules")
    if isinstance(rules, list):
        found.extend(rule.get("go") for rule in rules if isinstance(rule, Mapping))
    next_steps = step.get("next_steps")
    if isinstance(next_steps, Mapping):
        found.extend(next_steps.values())
    action = step.get("action")  # a menu built from data goes to `empty` when there is none
    if isinstance(action, Mapping):
        for key in ("rows_from", "buttons_from"):
            built = action.get(key)
            if isinstance(built, Mapping):
                found.append(built.get("empty"))
    return [target for target in found if isinstance(target, str)]


def check_reachability(steps: Mapping[Any, Any], out: list[Violation]) -> None:
    """Report steps no chain of replies leads to from 'initial': no customer would see them."""
    # Steps marked "entry" are where other services move conversations (UpdateConversation,
    # StartConversation's initial_step): they are reached from outside.
    entries = [
        name
        for name, step in steps.items()
        if isinstance(step, Mapping) and step.get("entry") is True
    ]
    reached = {INITIAL, *entries}
    pending = [INITIAL, *entries]
    while pending:
        for target in step_targets(steps.get(pending.pop())):
            if target in steps and target not in reached:
                reached.add(target)
                pending.append(target)
    if any(_dangling(steps[name], steps) for name in reached):
        # A target names no step: that is reported where it is, and the steps it was meant to
        # lead to would only repeat the one cause as "unreachable".
        return
    for step_name in steps:
        if step_name not in reached:
            out.append(
                Violation(
                    f"menu_structure.steps.{step_name}",
                    f"step '{clip(step_name)}' is unreachable: no next_step or next_steps leads "
                    "to it from 'initial' (mark it \"entry\": true if other services move "
                    "conversations there)",
                )
            )


def _dangling(step: object, steps: Mapping[Any, Any]) -> bool:
    """Whether a step leads to a step name that does not exist (rather than to a template)."""
    return any(
        target not in steps
        and not target.startswith(FLOW_PREFIX)
        and not target.endswith(GUIDE_FLOW_SUFFIX)
        for target in step_targets(step)
    )
