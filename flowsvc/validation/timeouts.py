"""Checks on a step's `timeout`: what the customer's silence does (engine.timers).

"timeout": {"after": "30m", "remind": {"after": "10m", "times": 1, "text": "..."},
            "go": "<step or flow:template>" | "end": "<text>"}
"""

from collections.abc import Mapping
from typing import Any

from flowsvc.engine import limits
from flowsvc.engine.timers import MAX_REMINDERS, parse_duration
from flowsvc.validation.context import check_text
from flowsvc.validation.targets import check_target
from flowsvc.validation.violation import Violation, check_keys, kind, quote

TIMEOUT_KEYS = ("after", "remind", "go", "end")
REMIND_KEYS = ("after", "times", "text")
DURATION_HELP = 'a duration such as "90s", "10m", "2h" or "1d" (at most 30 days)'


def check_timeout(step: Mapping[Any, Any], path: str, scope: Any, *, waited_in: bool) -> None:
    """Report everything wrong with `step["timeout"]`; `waited_in`: the step waits for the
    customer (an end step or a step of rules that moves on at once never does)."""
    out: list[Violation] = scope.out
    timeout = step["timeout"]
    where = f"{path}.timeout"
    if not isinstance(timeout, Mapping):
        out.append(
            Violation(where, f"must be an object (after, remind, go, end), not {kind(timeout)}")
        )
        return
    check_keys(timeout, TIMEOUT_KEYS, where, out)
    if not waited_in:
        out.append(
            Violation(
                where,
                "is never used: the customer does not wait in this step (it ends the "
                "conversation or moves on at once); put the timeout on a step that asks",
            )
        )
    after = _duration(timeout, "after", where, out)
    remind = timeout.get("remind")
    remind_after = None
    times = 0
    if "remind" in timeout:
        remind_after, times = _check_remind(remind, f"{where}.remind", scope, out)
    has_go, has_end = "go" in timeout, "end" in timeout
    if has_go and has_end:
        out.append(Violation(where, "either go to a target or end the conversation, not both"))
    if has_go:
        check_target(timeout["go"], f"{where}.go", scope.steps, scope.known, out, own=scope.own)
    if has_end:
        check_text(
            timeout["end"], f"{where}.end", out, limit=limits.MAX_TEXT_BODY, names=scope.names
        )
    if (has_go or has_end) and "after" not in timeout:
        out.append(
            Violation(f"{where}.after", "required with go or end: how long the silence lasts")
        )
    if "after" in timeout and not (has_go or has_end):
        out.append(
            Violation(
                where,
                'says after how long, but not what then: add "go" (a step or flow:<template>) '
                'or "end" (the text said as the conversation ends)',
            )
        )
    if "remind" not in timeout and not (has_go or has_end):
        out.append(Violation(where, 'needs a "remind", a "go" or an "end"'))
    every = remind.get("after") if isinstance(remind, Mapping) else ""
    if after is not None and remind_after is not None and times and remind_after * times >= after:
        out.append(
            Violation(
                f"{where}.remind.times",
                f"{times} reminder(s) every {every} do not fit in the timeout's after "
                f"({timeout['after']}): the last would come when the customer is already moved "
                "on; send fewer, or remind sooner",
            )
        )


def _check_remind(remind: object, where: str, scope: Any, out: list[Violation]) -> tuple[Any, int]:
    if not isinstance(remind, Mapping):
        out.append(Violation(where, f"must be an object (after, times, text), not {kind(remind)}"))
        return None, 0
    check_keys(remind, REMIND_KEYS, where, out)
    if "after" not in remind:
        out.append(Violation(f"{where}.after", "required: how long after the step to remind"))
    remind_after = _duration(remind, "after", where, out)
    if "text" not in remind:
        out.append(Violation(f"{where}.text", "required: what the reminder says"))
    else:
        check_text(
            remind["text"], f"{where}.text", out, limit=limits.MAX_TEXT_BODY, names=scope.names
        )
    times = remind.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or not 1 <= times <= MAX_REMINDERS:
        out.append(
            Violation(
                f"{where}.times", f"must be a whole number 1-{MAX_REMINDERS}, not {quote(times)}"
            )
        )
        times = 0
    return remind_after, times


def _duration(holder: Mapping[Any, Any], key: str, where: str, out: list[Violation]) -> Any:
    if key not in holder:
        return None
    value = parse_duration(holder[key])
    if value is None:
        out.append(
            Violation(f"{where}.{key}", f"must be {DURATION_HELP}, not {quote(holder[key])}")
        )
    return value
