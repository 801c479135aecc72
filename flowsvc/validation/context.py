"""Checks on what a template reads from and writes to the conversation context.

Context keys, placeholders in texts and `compute` expressions, checked with the engine's own
placeholder pattern and expression parser so that the validator and the engine cannot disagree.
"""

import re
from collections.abc import Collection, Mapping

from flowsvc.engine import render
from flowsvc.engine.expressions import ExpressionError, names
from flowsvc.engine.messages import LANGUAGE_KEY
from flowsvc.engine.orders import ORDER_LOOKUP_NAMES
from flowsvc.engine.render import BUILTIN_NAMES, PLACEHOLDER
from flowsvc.engine.wording import LANGUAGE
from flowsvc.validation.violation import Violation, clip, kind, quote, suggest

KEY_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,63}\Z")

# flow_token: the engine keeps there the token of the Flow message it sent last.
RESERVED_NAMES = (*BUILTIN_NAMES, *ORDER_LOOKUP_NAMES, "flow_token")
# Where the guide's code put every answer; here it is an ordinary key a step may choose.
GUIDE_INPUT = "user_input"
FORMATS = tuple(sorted(render.FORMATS))

_NEAR_MISS = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_ ]*(?::[^{}\n]*)?\}")
_ODD_FORMAT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}\s]*)\}")
# An opening brace and a name that no closing brace follows before the next brace or line end.
_UNCLOSED = re.compile(r"\{\s*[A-Za-z_][A-Za-z0-9_]*(?::[A-Za-z0-9_]*)?(?=[^A-Za-z0-9_:}]|\Z)")


def check_key(key: object, path: str, out: list[Violation], *, what: str) -> bool:
    """A key the template writes: identifier-like and not a built-in. True when it is fine."""
    if not isinstance(key, str):
        out.append(Violation(path, f"{what} must be a string, not {kind(key)}"))
        return False
    if not KEY_PATTERN.match(key):
        out.append(
            Violation(
                path,
                f"{what} '{clip(key)}' is not a valid name: use lowercase letters, digits and "
                "underscores, starting with a letter or underscore (at most 64)",
            )
        )
        return False
    if key in RESERVED_NAMES:
        out.append(
            Violation(path, f"{what} '{key}' is a built-in name the engine fills in: pick another")
        )
        return False
    return True


def check_set(value: object, path: str, out: list[Violation]) -> None:
    """`set` on a step, row or button: identifier keys to JSON scalars."""
    if not isinstance(value, Mapping):
        out.append(
            Violation(path, f'must be an object like {{"size": "large"}}, not {kind(value)}')
        )
        return
    for key, item in value.items():
        item_path = f"{path}.{key}"
        check_key(key, item_path, out, what="set key")
        if key == LANGUAGE_KEY and not (isinstance(item, str) and LANGUAGE.match(item)):
            out.append(
                Violation(
                    item_path,
                    f"{quote(item)} is not a language code: the customer's language is one "
                    "like 'es' or 'pt_BR' (a key of the template's translations)",
                )
            )
        elif not (item is None or isinstance(item, str | int | float | bool)):
            out.append(
                Violation(
                    item_path,
                    f"must be a string, number, boolean or null, not {kind(item)}: "
                    "set stores literal values only",
                )
            )


def placeholders(text: str) -> tuple[list[str], list[str]]:
    """The names a text's placeholders read, and what is wrong with its placeholders.

    A placeholder is exactly what the engine's renderer fills (render.PLACEHOLDER); other braces
    are sent as they are, so a near miss such as "{ total }" is reported rather than sent.
    """
    names: list[str] = []
    problems: list[str] = []
    for name, form in dict.fromkeys(PLACEHOLDER.findall(text)):
        if form and form not in FORMATS:
            problems.append(
                f"'{{{clip(name)}:{clip(form)}}}' uses unknown format '{clip(form)}': "
                f"the formats are {', '.join(FORMATS)}{suggest(form, FORMATS)}"
            )
        names.append(name)
    for near in dict.fromkeys(_NEAR_MISS.findall(text)):
        if PLACEHOLDER.fullmatch(near):
            continue
        odd = _ODD_FORMAT.fullmatch(near)
        if odd:
            name, form = odd.groups()
            problems.append(
                f"'{clip(near)}' uses unknown format '{clip(form)}', so it would be sent as it "
                f"is: the formats are {', '.join(FORMATS)}{suggest(form, FORMATS)}"
            )
            names.append(name)
        else:
            problems.append(
                f"'{clip(near)}' looks like a placeholder but is not one, so it would be sent "
                "as it is: write {name} or {name:format}, without spaces"
            )
    for opened in dict.fromkeys(_UNCLOSED.findall(text)):
        if not _after_closing(text, opened):
            problems.append(
                f"'{clip(opened)}' opens a placeholder that is never closed, so it would be sent "
                f"as it is: write '{clip(opened.replace(' ', ''))}}}'"
            )
    return names, problems


def _after_closing(text: str, opened: str) -> bool:
    """Whether every occurrence of `opened` is followed by its closing brace (a near miss that
    is reported already, such as '{ total }', is not also unclosed)."""
    start = text.find(opened)
    while start != -1:
        rest = text[start + len(opened) :]
        end = min((i for i in (rest.find(c) for c in "{}\n") if i != -1), default=-1)
        if end == -1 or rest[end] != "}":
            return False
        start = text.find(opened, start + 1)
    return True


def check_text(
    value: object,
    path: str,
    out: list[Violation],
    *,
    limit: int,
    names: Collection[str],
    why: str = "",
) -> None:
    """A text sent to the customer: a non-empty string within `limit`, with known placeholders.

    The literal template text is measured: placeholder values are not known before they are sent.
    """
    if not isinstance(value, str):
        out.append(Violation(path, f"must be a string, not {kind(value)}"))
        return
    if not value.strip():
        out.append(Violation(path, "is empty: WhatsApp rejects empty texts"))
        return
    if len(value) > limit:
        out.append(
            Violation(
                path, f"is {len(value)} characters long; WhatsApp allows at most {limit}{why}"
            )
        )
    used, problems = placeholders(value)
    out.extend(Violation(path, problem) for problem in problems)
    for name in dict.fromkeys(used):
        if name in names:
            continue
        if name in ORDER_LOOKUP_NAMES:
            reason = f'{{{name}}} is only known after a step with "lookup": "order"'
        elif name == GUIDE_INPUT:
            out.append(
                Violation(
                    path,
                    f"placeholder {{{GUIDE_INPUT}}} is always empty: menuflow keeps an answer "
                    "only under its step's context_key (the guide put every answer in "
                    f'{GUIDE_INPUT}); add "context_key": "{GUIDE_INPUT}" to the step that asks, '
                    "or read that step's own key",
                    warning=True,
                )
            )
            continue
        else:
            reason = (
                f"placeholder {{{name}}} names nothing this template sets (no context_key, set "
                f"or compute key '{name}') and no built-in ({', '.join(BUILTIN_NAMES)})"
            )
        out.append(Violation(path, reason + suggest(name, names)))


def expression_names(expression: str) -> tuple[list[str], str | None]:
    """The names an expression reads, and why the engine could not evaluate it (None if it could):
    the engine's own parser decides, so the two can never disagree."""
    try:
        return sorted(names(expression)), None
    except ExpressionError as error:
        return [], str(error)


def check_compute(
    value: object, path: str, out: list[Violation], *, names: Collection[str]
) -> None:
    """`compute`: identifier keys to expressions that parse and read only names known names."""
    if not isinstance(value, Mapping):
        out.append(
            Violation(
                path, f'must be an object like {{"total": "price * quantity"}}, not {kind(value)}'
            )
        )
        return
    for key, expression in value.items():
        item_path = f"{path}.{key}"
        check_key(key, item_path, out, what="compute key")
        if not isinstance(expression, str):
            out.append(
                Violation(item_path, f"must be an expression string, not {kind(expression)}")
            )
            continue
        used, problem = expression_names(expression)
        if problem:
            out.append(Violation(item_path, f"expression '{clip(expression)}' {problem}"))
            continue
        for name in dict.fromkeys(used):
            if name not in names:
                out.append(
                    Violation(
                        item_path,
                        f"expression reads '{name}', which nothing in this template sets "
                        f"(no context_key, set or compute key){suggest(name, names)}",
                    )
                )
