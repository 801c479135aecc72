"""Meta's message templates as the Graph API stand-in knows them: the `type: template` body Meta
documents, and the templates a WhatsApp Business Account has approved (or paused, or disabled),
answered with Meta's template errors when a message does not match one.

Body shape (Meta's "Send message templates"; the Node SDK's Template/Component/Parameter objects):
`template: {name, language: {code, policy: "deterministic"}, components: [...]}`, a component is
`{type: "header"|"body", parameters: [...]}` or `{type: "button", sub_type, index: "0".."9",
parameters: [one]}`; a text parameter is `{type: "text", text[, parameter_name]}` (header text
at most 60 characters, body 1024, or 32768 when the body is the only component, and no line
breaks, tabs or more than 4 spaces in a row), media `{type: "image", image: {link | id}}`, a quick
reply's `{type: "payload", payload}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

# Meta's HTTP status and title for the template error codes (Meta's error codes page).
TEMPLATE_ERRORS: dict[int, tuple[int, str]] = {
    132000: (400, "Number of parameters does not match the expected number of params"),
    132001: (404, "Template name does not exist in the translation"),
    132005: (400, "Translated text too long"),
    132007: (400, "Template Format Character Policy Violated"),
    132012: (400, "Parameter format does not match format in the created template"),
    132015: (400, "Template is Paused"),
    132016: (400, "Template is Disabled"),
}
Status = Literal["APPROVED", "PAUSED", "DISABLED"]
HeaderKind = Literal["text", "image", "video", "document"]
_BAD_SPACING = re.compile(r"[\n\t]| {5}")
_MEDIA = ("image", "video", "document")


class Invalid(Exception):
    """A request Meta would refuse; `code` is Meta's error code."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(frozen=True)
class Approved:
    """A template as the business account holds it: what each component takes."""

    name: str
    language: str
    header: HeaderKind | None = None  # a header that takes a parameter, and of which kind
    body: int = 0  # how many body parameters ({{1}}, ...), or
    body_names: tuple[str, ...] = ()  # the names of named ones
    buttons: tuple[str, ...] = ()  # by index: "quick_reply", "url" (buttons that take a value)
    status: Status = "APPROVED"


def keys(obj: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    """`obj` as a JSON object with no keys but `allowed`, or Invalid as Meta answers."""
    if not isinstance(obj, dict):
        raise Invalid(100, f"Param {path} must be a JSON object")
    unexpected = sorted(set(obj) - allowed)
    if unexpected:
        raise Invalid(100, f"Unexpected key(s) {unexpected} in {path}")
    return obj


def _string(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid(100, f"Param {path} is required and must be a non-empty string")
    if len(value) > limit:
        raise Invalid(131009, f"Param {path} must be at most {limit} characters long")
    return value


def validate(body: dict[str, Any]) -> None:
    """Check a `type: template` body's `template` object as Meta documents it."""
    template = keys(body.get("template"), "template", {"name", "language", "components"})
    _string(template.get("name"), "template['name']", 512)
    language = keys(template.get("language"), "template['language']", {"code", "policy"})
    _string(language.get("code"), "template['language']['code']", 16)
    if language.get("policy", "deterministic") != "deterministic":
        raise Invalid(100, "Param template['language']['policy'] must be 'deterministic'")
    components = template.get("components", [])
    if not isinstance(components, list):
        raise Invalid(100, "Param template['components'] must be an array")
    only_body = [c.get("type") for c in components if isinstance(c, dict)] == ["body"]
    for n, component in enumerate(components):
        path = f"template['components'][{n}]"
        component = keys(component, path, {"type", "sub_type", "index", "parameters"})
        kind = component.get("type")
        parameters = component.get("parameters")
        if not isinstance(parameters, list) or not parameters:
            raise Invalid(100, f"Param {path}['parameters'] must be a non-empty array")
        if kind in ("header", "body"):
            if "sub_type" in component or "index" in component:
                raise Invalid(100, f"Param {path} is a {kind}: it has no sub_type or index")
            limit = 60 if kind == "header" else (32768 if only_body else 1024)
            for m, parameter in enumerate(parameters):
                _parameter(parameter, f"{path}['parameters'][{m}]", limit)
        elif kind == "button":
            if component.get("sub_type") not in ("quick_reply", "url", "copy_code", "flow"):
                raise Invalid(100, f"Param {path}['sub_type'] is not a button sub_type")
            index = component.get("index")
            if not (isinstance(index, str) and index.isdigit() and 0 <= int(index) <= 9):
                raise Invalid(100, f"Param {path}['index'] must be a string from '0' to '9'")
            if len(parameters) != 1:
                raise Invalid(100, f"Param {path}['parameters'] must hold one parameter")
            _button_parameter(parameters[0], component["sub_type"], f"{path}['parameters'][0]")
        else:
            raise Invalid(100, f"Param {path}['type'] must be header, body or button")


def _parameter(parameter: Any, path: str, limit: int) -> None:
    parameter = keys(parameter, path, {"type", "text", "parameter_name", *_MEDIA})
    kind = parameter.get("type")
    if kind == "text":
        text = _string(parameter.get("text"), f"{path}['text']", limit)
        if _BAD_SPACING.search(text):
            raise Invalid(
                100,
                "Param text cannot have new-line/tab characters or more than 4 consecutive spaces",
            )
    elif kind in _MEDIA:
        media = keys(parameter.get(kind), f"{path}['{kind}']", {"link", "id", "filename"})
        if ("link" in media) == ("id" in media):
            raise Invalid(100, f"Param {path}['{kind}'] needs one of link or id")
    else:
        raise Invalid(100, f"Param {path}['type'] is not a parameter type the stand-in knows")


def _button_parameter(parameter: Any, sub_type: str, path: str) -> None:
    if sub_type == "quick_reply":
        parameter = keys(parameter, path, {"type", "payload"})
        if parameter.get("type") != "payload":
            raise Invalid(100, f"Param {path}['type'] must be 'payload' for a quick reply")
        _string(parameter.get("payload"), f"{path}['payload']", 4096)
    else:
        parameter = keys(parameter, path, {"type", "text", "coupon_code", "action"})
        if parameter.get("type") not in ("text", "coupon_code", "action"):
            raise Invalid(100, f"Param {path}['type'] does not fit a {sub_type} button")


def match(approved: dict[tuple[str, str], Approved], body: dict[str, Any]) -> None:
    """Answer as Meta does when a valid template body does not fit the business's templates."""
    template = body["template"]
    found = approved.get((template["name"], template["language"]["code"]))
    if found is None:
        raise Invalid(
            132001, f"template name ({template['name']}) does not exist in the translation"
        )
    if found.status == "PAUSED":
        raise Invalid(132015, "Template is Paused")
    if found.status == "DISABLED":
        raise Invalid(132016, "Template is Disabled")
    parts = {c["type"]: c for c in template.get("components", []) if c["type"] != "button"}
    header = parts.get("header", {}).get("parameters", [])
    if len(header) != (1 if found.header else 0):
        raise Invalid(132000, "header: number of localizable_params does not match")
    if header and header[0]["type"] != found.header:
        raise Invalid(132012, f"header: a {found.header} parameter was expected")
    body_parameters = parts.get("body", {}).get("parameters", [])
    expected = len(found.body_names) or found.body
    if len(body_parameters) != expected:
        raise Invalid(
            132000,
            f"body: number of localizable_params ({len(body_parameters)}) does not match the "
            f"expected number of params ({expected})",
        )
    if found.body_names and [p.get("parameter_name") for p in body_parameters] != list(
        found.body_names
    ):
        raise Invalid(132000, f"body: the parameters named are not {list(found.body_names)}")
    for button in (c for c in template.get("components", []) if c["type"] == "button"):
        index = int(button["index"])
        if index >= len(found.buttons) or found.buttons[index] != button["sub_type"]:
            raise Invalid(132012, f"button {index} is not a {button['sub_type']} button")
