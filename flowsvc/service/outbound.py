"""What other services ask flowsvc to send (SendMessage, and the Meta message template of a
start or an update outside the customer service window), and the checks it passes before
anything is locked or written."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from flowsvc.engine import Message, limits, load_template
from flowsvc.engine.message_templates import MessageTemplate, Parameter
from flowsvc.engine.messages import build, text_message
from flowsvc.engine.render import fill_capped
from flowsvc.validation.context import check_text
from flowsvc.validation.messages import check_message
from flowsvc.validation.violation import Violation

Problems = list[tuple[str, str]]

TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}")
LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")
MAX_HEADER_TEXT = 60  # Meta: a text header's parameter
MAX_BODY_TEXT = 1024  # Meta: a body parameter when the template has other components
MAX_BODY_ONLY_TEXT = 32768  # ... and when the body is all there is
MAX_PAYLOAD = 256  # a quick reply's payload comes back as a tap's id: as long as a button id
MAX_URL_TEXT = 2000
MAX_BUTTONS = 10  # Meta: a template has at most 10 buttons (index 0-9)
# Meta refuses parameter texts with line breaks, tabs or more than 4 spaces in a row.
_BAD_SPACING = re.compile(r"[\n\t]| {5}")


class _Anything(Mapping[str, Any]):
    """Every name counts as known: a sent text's placeholders are filled from the customer's
    conversation, whose keys are only known when it is sent."""

    def __getitem__(self, key: str) -> Any:
        return None

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass(frozen=True)
class FreeForm:
    """A free-form message to send: a text, or an interactive message (reply buttons or a list)
    written as a template's message is (docs/templates.md). Its {placeholders} are filled from
    the customer's running conversation, if any."""

    text: str | None = None
    interactive: Message | None = None

    def body(self, to: str, context: Mapping[str, Any]) -> dict[str, Any]:
        def fill(text: str, limit: int) -> str:
            return fill_capped(text, context, limit)

        if self.interactive is not None:
            return build(to, self.interactive, fill)
        return text_message(to, fill(self.text or "", limits.MAX_TEXT_BODY))


def free_form(
    text: str | None, interactive: Mapping[str, Any] | None, problems: Problems
) -> FreeForm | None:
    """The free-form message of a request (None when it has none); its problems go to
    `problems`."""
    if text is not None and interactive is not None:
        problems.append(("content", "one of text or interactive, not both"))
        return None
    out: list[Violation] = []
    if text is not None:
        check_text(text, "text", out, limit=limits.MAX_TEXT_BODY, names=_Anything())
        problems.extend((v.field, v.description) for v in out)
        return FreeForm(text=text)
    if interactive is None:
        return None
    kind = interactive.get("type")
    if kind not in ("button", "list"):
        problems.append(("interactive.type", 'must be "button" or "list"'))
        return None
    check_message(
        kind, cast(Mapping[object, object], interactive), "interactive", out, names=_Anything()
    )
    unknown = sorted(set(interactive) - {"type", "header", "body", "footer", "action"})
    out.extend(Violation(f"interactive.{key}", "is not a field of a message") for key in unknown)
    problems.extend((v.field, v.description) for v in out)
    if out:
        return None
    return FreeForm(interactive=load_template("message", 1, dict(interactive)).first)


def check_template(template: MessageTemplate, path: str) -> Problems:
    """What is wrong with a Meta message template's name, language and parameters."""
    problems: Problems = []
    if not TEMPLATE_NAME.fullmatch(template.name):
        problems.append((f"{path}.name", "required: the approved template's name (a-z, 0-9 and _)"))
    if not LANGUAGE.fullmatch(template.language):
        problems.append(
            (f"{path}.language", "required: the template's language code, e.g. en or en_US")
        )
    if len(template.header) > 1:
        problems.append((f"{path}.header", "a template header takes one parameter at most"))
    body_limit = MAX_BODY_TEXT if template.header or template.buttons else MAX_BODY_ONLY_TEXT
    for part, parameters, limit in (
        ("header", template.header, MAX_HEADER_TEXT),
        ("body", template.body, body_limit),
    ):
        named = {bool(p.name) for p in parameters}
        if len(named) > 1:
            problems.append(
                (f"{path}.{part}", "name every parameter (named parameters) or none (positional)")
            )
        for index, parameter in enumerate(parameters):
            problems += _check_parameter(parameter, f"{path}.{part}[{index}]", limit, part)
    seen: set[int] = set()
    for index, button in enumerate(template.buttons):
        where = f"{path}.buttons[{index}]"
        if not 0 <= button.index < MAX_BUTTONS or button.index in seen:
            problems.append(
                (f"{where}.index", f"a distinct button position from 0 to {MAX_BUTTONS - 1}")
            )
        seen.add(button.index)
        if (button.quick_reply_payload is None) == (button.url_text is None):
            problems.append((where, "one of quick_reply_payload or url_text"))
        elif button.quick_reply_payload is not None:
            if not 0 < len(button.quick_reply_payload) <= MAX_PAYLOAD:
                problems.append((f"{where}.quick_reply_payload", f"1 to {MAX_PAYLOAD} characters"))
        elif not 0 < len(button.url_text or "") <= MAX_URL_TEXT:
            problems.append((f"{where}.url_text", f"1 to {MAX_URL_TEXT} characters"))
    return problems


def _check_parameter(parameter: Parameter, path: str, limit: int, part: str) -> Problems:
    if parameter.media is not None:
        media = parameter.media
        if part != "header":
            return [(path, "images, videos and documents go in the header only")]
        if bool(media.link) == bool(media.id):
            return [(f"{path}.{media.kind}", "one of link or id")]
        if media.filename and media.kind != "document":
            return [(f"{path}.{media.kind}.filename", "only documents have a file name")]
        return []
    text = parameter.text
    if text is None or not text.strip():
        return [(f"{path}.text", "required: a parameter's value may not be empty")]
    if len(text) > limit:
        return [(f"{path}.text", f"is {len(text)} characters long; Meta allows {limit} here")]
    if _BAD_SPACING.search(text):
        return [
            (f"{path}.text", "Meta refuses line breaks, tabs and more than 4 spaces in a row here")
        ]
    return []
