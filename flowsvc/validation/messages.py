"""Checks on a message a template sends: Meta's interactive shape and WhatsApp's limits."""

from collections.abc import Collection, Mapping

from flowsvc.engine import limits
from flowsvc.engine.template import (
    CTA_URL,
    FLOW,
    HEADER_MEDIA_TYPES,
    LOCATION_REQUEST,
    MEDIA_TYPES,
)
from flowsvc.validation.context import check_text
from flowsvc.validation.flows import check_flow_action
from flowsvc.validation.media import check_media, check_url
from flowsvc.validation.options import Offer, check_buttons, check_list
from flowsvc.validation.violation import Violation, check_keys, kind, quote

MESSAGE_TYPES = ("button", "list", "text")
STEP_MESSAGE_TYPES = (*MESSAGE_TYPES, CTA_URL, LOCATION_REQUEST, FLOW, *MEDIA_TYPES)
"""A step may also send a URL button, a location request, a WhatsApp Flow or a media message."""
MEDIA_HEADERS = ("button", CTA_URL)
"""Interactive types whose header may be an image, video or document."""
MESSAGE_KEYS = ("header", "body", "footer", "action")
STEP_MESSAGE_KEYS = (*MESSAGE_KEYS, *MEDIA_TYPES)


def body_limit(message_type: object) -> int:
    """Meta allows a longer body with a list (or as plain text) than with reply buttons."""
    if message_type in ("list", "text"):
        return limits.MAX_BODY_WITH_LIST
    return limits.MAX_BODY_WITH_BUTTONS


def check_message(
    message_type: str,
    holder: Mapping[object, object],
    path: str,
    out: list[Violation],
    *,
    names: Collection[str],
    body_from_prompt: bool = False,
) -> list[Offer] | None:
    """Check the header/body/footer/action in `holder`; return what the message offers to tap.

    None when the action is too broken to tell, so that checks of next_steps against the
    choices do not pile more violations on the one already reported. `body_from_prompt`: a
    step with a type and no body uses its prompt as the body.
    """
    for key in MEDIA_TYPES:
        if key in holder and key != message_type:
            out.append(
                Violation(
                    f"{path}.{key}",
                    f'a {message_type} message has no {key}: set "type": "{key}" to send '
                    f'it, or use it as a header ({{"type": "{key}", "{key}": ...}})',
                )
            )
    if message_type in MEDIA_TYPES:
        for key in ("header", "body", "footer", "action"):
            if key in holder:
                out.append(
                    Violation(
                        f"{path}.{key}",
                        f"a {message_type} message has no {key}"
                        + (
                            f": put the text in {message_type}.caption"
                            if key == "body" and message_type in ("image", "video", "document")
                            else ""
                        ),
                    )
                )
        if message_type not in holder:
            out.append(
                Violation(
                    f"{path}.{message_type}",
                    f'is missing: a {message_type} message needs {{"link": "https://..."}} '
                    f'or {{"id": "<media id>"}}',
                )
            )
        else:
            check_media(
                message_type, holder[message_type], f"{path}.{message_type}", out, names=names
            )
        return []
    if "body" in holder:
        _check_text_object(
            holder["body"], f"{path}.body", out, limit=body_limit(message_type), names=names
        )
    elif not body_from_prompt:
        out.append(
            Violation(f"{path}.body", f'is missing: a {message_type} message needs {{"text": ...}}')
        )
    if message_type == "text":
        for key in ("header", "footer", "action"):
            if key in holder:
                out.append(
                    Violation(
                        f"{path}.{key}",
                        f"a plain text message has no {key}: use type 'button' or 'list' "
                        "for an interactive message, or remove it",
                    )
                )
        return []
    if message_type == LOCATION_REQUEST:
        for key in ("header", "footer"):
            if key in holder:
                out.append(
                    Violation(f"{path}.{key}", "a location request shows a body only: remove it")
                )
        if "action" in holder and holder["action"] != {"name": "send_location"}:
            out.append(
                Violation(f"{path}.action", 'must be {"name": "send_location"}, or left out')
            )
        return []
    if "header" in holder:
        _check_header(
            holder["header"], f"{path}.header", out, names=names, message_type=message_type
        )
    if "footer" in holder:
        _check_text_object(
            holder["footer"], f"{path}.footer", out, limit=limits.MAX_FOOTER, names=names
        )
    if "action" not in holder:
        wanted = {
            "button": "buttons",
            CTA_URL: "a cta_url action",
            FLOW: 'a flow action ({"name": "flow", "parameters": {...}})',
        }.get(message_type, "a button label and sections")
        out.append(
            Violation(f"{path}.action", f"is missing: a {message_type} message needs {wanted}")
        )
        return None
    action = holder["action"]
    if not isinstance(action, Mapping):
        out.append(Violation(f"{path}.action", f"must be an object, not {kind(action)}"))
        return None
    if message_type == "button":
        return check_buttons(action, f"{path}.action", out)
    if message_type == CTA_URL:
        _check_cta(action, f"{path}.action", out, names=names)
        return []
    if message_type == FLOW:
        check_flow_action(action, f"{path}.action", out, names=names)
        return []
    return check_list(action, f"{path}.action", out)


def _check_cta(
    action: Mapping[object, object], path: str, out: list[Violation], *, names: Collection[str]
) -> None:
    """A URL button: {"name": "cta_url", "parameters": {"display_text", "url"}}."""
    check_keys(action, ("name", "parameters"), path, out)
    if action.get("name") != CTA_URL:
        out.append(Violation(f"{path}.name", f"must be 'cta_url', not {quote(action.get('name'))}"))
    parameters = action.get("parameters")
    if not isinstance(parameters, Mapping):
        out.append(
            Violation(
                f"{path}.parameters",
                'must be an object like {"display_text": "Pay now", "url": "https://..."}',
            )
        )
        return
    check_keys(parameters, ("display_text", "url"), path + ".parameters", out)
    label = parameters.get("display_text")
    if not isinstance(label, str) or not label.strip():
        out.append(Violation(f"{path}.parameters.display_text", "must be the button's label"))
    elif len(label) > limits.MAX_CTA_DISPLAY_TEXT:
        out.append(
            Violation(
                f"{path}.parameters.display_text",
                f"is {len(label)} characters long; WhatsApp allows at most "
                f"{limits.MAX_CTA_DISPLAY_TEXT}",
            )
        )
    check_url(parameters.get("url"), f"{path}.parameters.url", out, names=names)


def _check_text_object(
    value: object, path: str, out: list[Violation], *, limit: int, names: Collection[str]
) -> None:
    if not isinstance(value, Mapping):
        out.append(Violation(path, f'must be an object like {{"text": "..."}}, not {kind(value)}'))
        return
    check_keys(value, ("text",), path, out)
    if "text" not in value:
        out.append(Violation(f"{path}.text", "is missing"))
        return
    check_text(value["text"], f"{path}.text", out, limit=limit, names=names)


def _check_header(
    value: object, path: str, out: list[Violation], *, names: Collection[str], message_type: str
) -> None:
    if not isinstance(value, Mapping):
        out.append(
            Violation(
                path, f'must be an object like {{"type": "text", "text": "..."}}, not {kind(value)}'
            )
        )
        return
    header_type = value.get("type")
    media_ok = message_type in MEDIA_HEADERS
    if media_ok and header_type in HEADER_MEDIA_TYPES:
        check_keys(value, ("type", header_type), path, out)
        if header_type not in value:
            out.append(
                Violation(
                    f"{path}.{header_type}",
                    f'is missing: an {header_type} header needs {{"link": "https://..."}} '
                    'or {"id": "<media id>"}',
                )
            )
        else:
            check_media(
                header_type,
                value[header_type],
                f"{path}.{header_type}",
                out,
                names=names,
                header=True,
            )
        return
    check_keys(value, ("type", "text"), path, out)
    if "type" not in value:
        out.append(Violation(f"{path}.type", 'is missing: set "type": "text"'))
    elif header_type != "text":
        allowed = (
            "'text', 'image', 'video' or 'document'"
            if media_ok
            else f"'text' (WhatsApp shows only text headers on {message_type} messages)"
        )
        out.append(Violation(f"{path}.type", f"is {quote(header_type)}: must be {allowed}"))
        return
    if "text" not in value:
        out.append(Violation(f"{path}.text", "is missing"))
        return
    check_text(value["text"], f"{path}.text", out, limit=limits.MAX_HEADER, names=names)
