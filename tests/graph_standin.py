"""A local stand-in for Meta's Graph API: checks requests as Meta documents them, fails on command.

It answers like Meta (`messages[0].id`), records every request in order, validates bodies against
WhatsApp's limits (meta-contract.md §5-6; a broken body gets a Meta-like 400 with code 100 or
131009), and can be told to fail: Meta errors with any code and HTTP status, slow answers, dropped
connections, for a count, a window, or flapping (down for a while, up for a while, again). It
counts the requests in flight per business number, so that tests see how hard a sender hammers.
Use it in-process (`StandinServer`, `Standin.fail(...)`) or as a process for benchmarks and the
fault suite: `python -m tests.graph_standin --port N`, controlled over HTTP under
`/_standin/` (POST/DELETE faults, GET/DELETE requests).

Like Meta, it can follow each accepted message with a signed `sent` status webhook to the
business's webhook URLs (`StatusWebhooks`, `--statuses-to`), echoing the message's tracker
(`biz_opaque_callback_data`, at most 512 characters: Meta's limit).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from menuflow.runtime import tune_garbage_collector
from tests import graph_templates
from tests.graph_templates import TEMPLATE_ERRORS, Approved, Invalid, keys as _keys
from tests.one_write_http import OneWriteHttpToolsProtocol

# Meta's HTTP status and title for each code (meta-contract.md §7).
META_ERRORS: dict[int, tuple[int, str]] = {
    0: (401, "AuthException"),
    1: (400, "API Unknown"),
    2: (503, "API Service"),
    3: (403, "API Method"),
    4: (429, "Application request limit reached"),
    10: (403, "Permission Denied"),
    100: (400, "Invalid parameter"),
    190: (401, "Access token has expired"),
    200: (403, "Permission error"),
    368: (403, "Temporarily blocked for policies violations"),
    80007: (429, "Rate limit issues"),
    130429: (429, "Rate limit hit"),
    131000: (500, "Something went wrong"),
    131005: (403, "Access denied"),
    131008: (400, "Required parameter is missing"),
    131009: (400, "Parameter value is not valid"),
    131016: (503, "Service unavailable"),
    131021: (400, "Recipient cannot be sender"),
    131026: (400, "Message undeliverable"),
    131031: (403, "Account has been locked"),
    131047: (400, "Re-engagement message"),
    131048: (429, "Spam rate limit hit"),
    131051: (400, "Unsupported message type"),
    131056: (429, "(Business Account, Consumer Account) pair rate limit hit"),
    133004: (503, "Server temporarily unavailable"),
    **TEMPLATE_ERRORS,
}
THROTTLING_CODES = (4, 80007, 130429, 131056)

_PATH = re.compile(r"^/(?P<version>v\d+\.\d+)/(?P<number>[^/]+)/messages$")

# How the stand-in's uvicorn runs, in tests and as a process: each answer in one write
# (tests/one_write_http.py), and none of the per-request work no test or benchmark looks at
# (X-Forwarded-For handling, Server and Date headers).
SERVER_OPTIONS: dict[str, Any] = {
    "http": OneWriteHttpToolsProtocol,
    "proxy_headers": False,
    "server_header": False,
    "date_header": False,
}


def meta_message_id(phone_number: str, unique: str) -> str:
    """A message id in Meta's shape: "wamid." and base64 of a record that holds the customer's
    number (as Meta's do), so that tests see what logging one would reveal."""
    record = b"\x1c\x18" + bytes([len(phone_number)]) + phone_number.encode()
    record += b"\x15\x02\x00\x12\x18" + bytes([len(unique)]) + unique.encode() + b"\x00"
    return "wamid." + base64.b64encode(record).decode()


def meta_error_body(code: int, details: str = "") -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body Meta answers with for an error code."""
    status, title = META_ERRORS.get(code, (400, "Error"))
    error = {
        "message": f"(#{code}) {title}",
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details or title},
        "fbtrace_id": "AStandinTrace",
    }
    return status, {"error": error}


def _text(obj: Any, path: str, limit: int, *, required: bool = True) -> str | None:
    if obj is None and not required:
        return None
    if not isinstance(obj, str) or (required and not obj):
        raise Invalid(100, f"Param {path} is required and must be a non-empty string")
    if len(obj) > limit:
        raise Invalid(131009, f"Param {path} must be at most {limit} characters long")
    return obj


MEDIA_TYPES = ("image", "document", "video", "audio", "sticker")


def _media(media: Any, kind: str, path: str, *, header: bool = False) -> None:
    """Meta's media object: `id` (uploaded) or `link` (hosted), never both; a caption (at most
    1024 characters) on images, videos and documents; a filename on documents."""
    allowed = {"id", "link"}
    if kind in ("image", "video", "document") and not header:
        allowed.add("caption")
    if kind == "document":
        allowed.add("filename")
    media = _keys(media, path, allowed)
    if ("id" in media) == ("link" in media):
        raise Invalid(100, f"Param {path} must have exactly one of id or link")
    if "id" in media:
        _text(media["id"], f"{path}['id']", 256)
    else:
        link = _text(media["link"], f"{path}['link']", 2000)
        if not (link or "").startswith(("https://", "http://")):
            raise Invalid(100, f"Param {path}['link'] must be a URL")
    _text(media.get("caption"), f"{path}['caption']", 1024, required=False)
    _text(media.get("filename"), f"{path}['filename']", 240, required=False)


def _header(header: Any, kinds: set[str]) -> None:
    header = _keys(header, "interactive['header']", {"type", "text", "image", "video", "document"})
    if header.get("type") not in kinds:
        raise Invalid(131009, f"Header type must be one of {sorted(kinds)}")
    kind = header["type"]
    if kind == "text":
        _keys(header, "interactive['header']", {"type", "text"})
        _text(header.get("text"), "interactive['header']['text']", 60)
    else:
        _keys(header, "interactive['header']", {"type", kind})
        _media(header.get(kind), kind, f"interactive['header']['{kind}']", header=True)


def _cta(action: Any) -> None:
    """A CTA URL button: name cta_url, a display_text of at most 20 characters and a URL."""
    action = _keys(action, "interactive['action']", {"name", "parameters"})
    if action.get("name") != "cta_url":
        raise Invalid(100, "Param interactive['action']['name'] must be 'cta_url'")
    path = "interactive['action']['parameters']"
    parameters = _keys(action.get("parameters"), path, {"display_text", "url"})
    _text(parameters.get("display_text"), f"{path}['display_text']", 20)
    url = _text(parameters.get("url"), f"{path}['url']", 2000) or ""
    if not url.startswith(("https://", "http://")) or any(c.isspace() for c in url):
        raise Invalid(100, f"Param {path}['url'] must be a URL")


_FLOW_PARAMETERS = {
    "flow_message_version",
    "flow_token",
    "flow_id",
    "flow_name",
    "flow_cta",
    "flow_action",
    "flow_action_payload",
    "mode",
}


def _flow(action: Any) -> None:
    """A Flow message's action as Meta documents it ("Sending a Flow"; the Messages reference):
    name "flow"; parameters flow_message_version "3", flow_token, exactly one of flow_id and
    flow_name, flow_cta (at most 20 characters, no emoji), flow_action navigate (the default,
    with flow_action_payload {screen, data?}, data a non-empty object) or data_exchange
    (without a payload), mode draft or published."""
    action = _keys(action, "interactive['action']", {"name", "parameters"})
    if action.get("name") != "flow":
        raise Invalid(100, "Param interactive['action']['name'] must be 'flow'")
    path = "interactive['action']['parameters']"
    parameters = _keys(action.get("parameters"), path, _FLOW_PARAMETERS)
    if parameters.get("flow_message_version") != "3":
        raise Invalid(100, f"Param {path}['flow_message_version'] must be '3'")
    _text(parameters.get("flow_token"), f"{path}['flow_token']", 512)
    if ("flow_id" in parameters) == ("flow_name" in parameters):
        raise Invalid(100, f"Param {path} must have exactly one of flow_id or flow_name")
    _text(parameters.get("flow_id", parameters.get("flow_name")), f"{path}['flow_id']", 256)
    cta = _text(parameters.get("flow_cta"), f"{path}['flow_cta']", 20) or ""
    if any(ord(c) >= 0x1F000 or 0x2600 <= ord(c) <= 0x27BF for c in cta):
        raise Invalid(131009, f"Param {path}['flow_cta'] must not contain emoji")
    flow_action = parameters.get("flow_action", "navigate")
    if flow_action not in ("navigate", "data_exchange"):
        raise Invalid(100, f"Param {path}['flow_action'] must be 'navigate' or 'data_exchange'")
    if flow_action == "data_exchange" and "flow_action_payload" in parameters:
        raise Invalid(100, f"Param {path}['flow_action_payload'] is only for navigate")
    if flow_action == "navigate":
        payload_path = f"{path}['flow_action_payload']"
        payload = _keys(parameters.get("flow_action_payload"), payload_path, {"screen", "data"})
        _text(payload.get("screen"), f"{payload_path}['screen']", 256)
        if "data" in payload and not (isinstance(payload["data"], dict) and payload["data"]):
            raise Invalid(100, f"Param {payload_path}['data'] must be a non-empty object")
    if parameters.get("mode", "published") not in ("draft", "published"):
        raise Invalid(100, f"Param {path}['mode'] must be 'draft' or 'published'")


def _buttons(action: dict[str, Any]) -> None:
    _keys(action, "interactive['action']", {"buttons"})
    buttons = action.get("buttons")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise Invalid(131009, "interactive['action']['buttons'] must hold 1 to 3 buttons")
    ids, titles = set(), set()
    for i, button in enumerate(buttons):
        path = f"interactive['action']['buttons'][{i}]"
        button = _keys(button, path, {"type", "reply"})
        if button.get("type") != "reply":
            raise Invalid(100, f"{path}['type'] must be 'reply'")
        reply = _keys(button.get("reply"), f"{path}['reply']", {"id", "title"})
        button_id = _text(reply.get("id"), f"{path}['reply']['id']", 256)
        title = _text(reply.get("title"), f"{path}['reply']['title']", 20)
        if button_id != button_id.strip():
            raise Invalid(131009, f"{path}['reply']['id'] has leading or trailing spaces")
        if button_id in ids or title in titles:
            raise Invalid(131009, "Button ids and titles must be unique")
        ids.add(button_id)
        titles.add(title)


def _list(action: dict[str, Any]) -> None:
    _keys(action, "interactive['action']", {"button", "sections"})
    _text(action.get("button"), "interactive['action']['button']", 20)
    sections = action.get("sections")
    if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
        raise Invalid(131009, "interactive['action']['sections'] must hold 1 to 10 sections")
    ids: set[str] = set()
    rows_in_all = 0
    for i, section in enumerate(sections):
        path = f"interactive['action']['sections'][{i}]"
        section = _keys(section, path, {"title", "rows"})
        _text(section.get("title"), f"{path}['title']", 24, required=len(sections) > 1)
        rows = section.get("rows")
        if not isinstance(rows, list) or not rows:
            raise Invalid(131009, f"{path}['rows'] must hold at least one row")
        rows_in_all += len(rows)
        for j, row in enumerate(rows):
            row = _keys(row, f"{path}['rows'][{j}]", {"id", "title", "description"})
            row_id = _text(row.get("id"), f"{path}['rows'][{j}]['id']", 200)
            _text(row.get("title"), f"{path}['rows'][{j}]['title']", 24)
            _text(row.get("description"), f"{path}['rows'][{j}]['description']", 72, required=False)
            if row_id in ids:
                raise Invalid(131009, "Row ids must be unique")
            ids.add(row_id)
    if rows_in_all > 10:
        raise Invalid(131009, "A list may hold at most 10 rows in all sections")


_READ_KEYS = {"messaging_product", "status", "message_id", "typing_indicator"}
_MESSAGE_KEYS = {"messaging_product", "recipient_type", "to", "type", "text", "interactive"}
_MESSAGE_KEYS |= {"template", *MEDIA_TYPES, "context", "biz_opaque_callback_data"}


def validate(body: Any) -> Literal["message", "read"]:
    """Check a /messages body as Meta documents it; raises Invalid like Meta's 400 would."""
    if not isinstance(body, dict):
        raise Invalid(100, "The request body must be a JSON object")
    if body.get("messaging_product") != "whatsapp":
        raise Invalid(100, "Param messaging_product must be 'whatsapp'")
    if body.get("status") == "read":
        _keys(body, "body", _READ_KEYS)
        _text(body.get("message_id"), "message_id", 512)
        if "typing_indicator" in body and body["typing_indicator"] != {"type": "text"}:
            raise Invalid(100, "Param typing_indicator must be {'type': 'text'}")
        return "read"
    _keys(body, "body", _MESSAGE_KEYS)
    if "biz_opaque_callback_data" in body:
        _text(body["biz_opaque_callback_data"], "biz_opaque_callback_data", 512)
    if body.get("recipient_type", "individual") != "individual":
        raise Invalid(100, "Param recipient_type must be 'individual'")
    _text(body.get("to"), "to", 32)
    if "context" in body:
        _text(_keys(body["context"], "context", {"message_id"}).get("message_id"), "context", 512)
    kind = body.get("type", "text")
    if kind == "template":
        graph_templates.validate(body)
        return "message"
    if kind == "text":
        text = _keys(body.get("text"), "text", {"body", "preview_url"})
        _text(text.get("body"), "text['body']", 4096)
        return "message"
    if kind in MEDIA_TYPES:
        _keys(
            body,
            "body",
            {
                "messaging_product",
                "recipient_type",
                "to",
                "type",
                kind,
                "context",
                "biz_opaque_callback_data",
            },
        )
        _media(body.get(kind), kind, kind)
        return "message"
    if kind != "interactive":
        raise Invalid(100, f"The stand-in only knows text and interactive messages, not {kind!r}")
    interactive = _keys(
        body.get("interactive"), "interactive", {"type", "header", "body", "footer", "action"}
    )
    sub = interactive.get("type")
    if sub not in ("button", "list", "cta_url", "location_request_message", "flow"):
        raise Invalid(
            100,
            "Param interactive['type'] must be 'button', 'list', 'cta_url', "
            "'location_request_message' or 'flow'",
        )
    if sub == "location_request_message":
        # Meta: body text (at most 1024 characters) and the send-location action, nothing else.
        _keys(interactive, "interactive", {"type", "body", "action"})
        body_text = _keys(interactive.get("body"), "interactive['body']", {"text"}).get("text")
        _text(body_text, "body", 1024)
        if interactive.get("action") != {"name": "send_location"}:
            raise Invalid(100, "Param interactive['action'] must be {'name': 'send_location'}")
        return "message"
    limit = 4096 if sub == "list" else 1024
    _text(
        _keys(interactive.get("body"), "interactive['body']", {"text"}).get("text"), "body", limit
    )
    if "footer" in interactive:
        footer = _keys(interactive["footer"], "interactive['footer']", {"text"})
        _text(footer.get("text"), "interactive['footer']['text']", 60)
    if "header" in interactive:
        _header(
            interactive["header"],
            {"text", "image", "video", "document"} if sub not in ("list", "flow") else {"text"},
        )
    if sub == "cta_url":
        _cta(interactive.get("action"))
        return "message"
    if sub == "flow":
        _flow(interactive.get("action"))
        return "message"
    action = _keys(
        interactive.get("action"), "interactive['action']", {"buttons", "button", "sections"}
    )
    _buttons(action) if sub == "button" else _list(action)
    return "message"


@dataclass
class Fault:
    """Instead of (or before) answering: an error, a slow answer, or a dropped connection."""

    kind: Literal["error", "slow", "drop"] = "error"
    code: int | None = None  # Meta error code (kind "error"); its HTTP status from META_ERRORS
    status: int | None = None  # HTTP status; with no code, the body is not Meta's JSON
    delay: float = 0.0  # seconds to wait first (kind "slow", or before an error or a drop)
    count: int | None = None  # how many requests it hits (None: no limit)
    seconds: float | None = None  # for how long from now (None: no limit)
    to: str | None = None  # only messages to this recipient
    reads: bool = False  # also mark-as-read requests (otherwise messages only)
    # Flapping: hits for `down` seconds, then not for `up` seconds, and again (both or neither).
    down: float | None = None
    up: float | None = None
    until: float = field(default=0.0, repr=False)
    since: float = field(default=0.0, repr=False)

    def hits(self, body: Any, kind: str) -> bool:
        now = time.monotonic()
        if self.until and now > self.until:
            return False
        if self.down is not None and self.up is not None:
            if (now - self.since) % (self.down + self.up) >= self.down:
                return False
        if self.count is not None and self.count <= 0:
            return False
        if kind == "read" and not self.reads:
            return False
        if self.to is not None and (not isinstance(body, dict) or body.get("to") != self.to):
            return False
        return True


@dataclass
class Received:
    """One request the stand-in got, and what it answered (status 0: dropped)."""

    at: float
    phone_number_id: str
    body: Any
    kind: str
    status: int = 0
    wa_message_id: str = ""
    error_code: int | None = None
    callback_data: str = ""  # the tracker sent with it (biz_opaque_callback_data), not in `body`
    in_flight: int = 0  # requests to this business number in flight when it came, itself included


@dataclass(frozen=True)
class StatusWebhooks:
    """Where and how the stand-in reports statuses: each accepted message gets a `sent` status
    `delay` seconds later, POSTed signed with `app_secret` to the first of `urls` that answers 200
    (the next one on failure, again and again for `give_up` seconds, as Meta retries).

    At most `senders` status webhooks are in flight, in the order they fell due: like Meta's, the
    stand-in's webhook delivery is apart from its API, so a backlog of statuses (a business slow to
    take them) waits in a queue and never slows the sends it answers."""

    urls: Sequence[str]
    app_secret: str
    delay: float = 0.2
    give_up: float = 120.0
    senders: int = 16


@dataclass
class _Due:
    """A status webhook waiting to be posted: when, what, and how many times it was tried."""

    at: float  # monotonic
    body: bytes
    headers: dict[str, str]
    give_up: float  # monotonic
    attempt: int = 0


def status_webhook(record: Received, status: str = "sent") -> dict[str, Any]:
    """The status webhook Meta sends about an accepted message, with its tracker if it had one."""
    item: dict[str, Any] = {
        "id": record.wa_message_id,
        "status": status,
        "timestamp": str(int(time.time())),
        "recipient_id": str(record.body.get("to", "")).lstrip("+"),
        "pricing": {"billable": False, "pricing_model": "PMP", "category": "service"},
    }
    if record.callback_data:
        item["biz_opaque_callback_data"] = record.callback_data
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550783881",
            "phone_number_id": record.phone_number_id,
        },
        "statuses": [item],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


class Standin:
    """The stand-in's state and its ASGI app; safe to control from another thread."""

    def __init__(
        self,
        *,
        access_token: str = "test-access-token",
        version: str = "v25.0",
        statuses: StatusWebhooks | None = None,
    ) -> None:
        self.access_token = access_token
        self.statuses = statuses
        # Called with each accepted message before its 200 is written (e.g. to kill its sender).
        self.on_accept: Callable[[Received], None] | None = None
        self._status_queue: asyncio.Queue[_Due] | None = None
        self._status_senders: list[asyncio.Task[None]] = []
        self._status_client: httpx.AsyncClient | None = None
        self.version = version
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._received: list[Received] = []
        self._ids = itertools.count(1)
        self._bearer = f"Bearer {access_token}".encode()
        self.templates: dict[tuple[str, str], Approved] = {}
        self._windows: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self.app = self._build()

    def approve(self, template: Approved) -> None:
        """Hold `template` as the business account's (by name and language)."""
        with self._lock:
            self.templates[(template.name, template.language)] = template

    def customer_wrote(self, to: str, at: float | None = None) -> None:
        """Track `to`'s customer service window from their last message at `at` (epoch seconds):
        free-form messages to them 24 hours after it fail with 131047, as Meta's do. Customers
        never named here are not tracked."""
        with self._lock:
            self._windows[to] = time.time() if at is None else at

    def _check_delivery(self, body: Any) -> None:
        """What Meta checks of a valid message against the account: its templates, and the
        window of a free-form message."""
        if not isinstance(body, dict) or "to" not in body:
            return
        if body.get("type") == "template":
            with self._lock:
                graph_templates.match(dict(self.templates), body)
            return
        with self._lock:
            wrote = self._windows.get(body["to"])
        if wrote is not None and time.time() - wrote >= 24 * 3600:
            raise Invalid(
                131047,
                "Message failed to send because more than 24 hours have passed since the "
                "customer last replied to this number.",
            )

    def fail(self, kind: Literal["error", "slow", "drop"] = "error", **options: Any) -> Fault:
        """Inject a fault; the oldest matching fault applies first."""
        fault = Fault(kind=kind, **options)
        fault.since = time.monotonic()
        if fault.seconds is not None:
            fault.until = fault.since + fault.seconds
        if (fault.down is None) != (fault.up is None):
            raise ValueError("a flapping fault needs both `down` and `up`")
        with self._lock:
            self._faults.append(fault)
        return fault

    def heal(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._received.clear()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def accepted(self) -> list[Received]:
        """Messages answered 200 (not read receipts), in the order they arrived."""
        return [r for r in self.received() if r.kind == "message" and r.status == 200]

    def _take_fault(self, body: Any, kind: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.hits(body, kind):
                    if fault.count is not None:
                        fault.count -= 1
                    return fault
        return None

    def _record(self, record: Received) -> None:
        with self._lock:
            self._received.append(record)

    def in_flight(self, phone_number_id: str) -> int:
        """Requests to this business number being answered now."""
        with self._lock:
            return self._in_flight.get(phone_number_id, 0)

    async def _messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.match(scope["path"])
        number = match["number"] if match else ""
        with self._lock:
            self._in_flight[number] = in_flight = self._in_flight.get(number, 0) + 1
        try:
            await self._answer(scope, receive, send, match, in_flight)
        finally:
            with self._lock:
                self._in_flight[number] -= 1

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: re.Match[str] | None,
        in_flight: int,
    ) -> None:
        # Plain ASGI, not Starlette's Request and Response: the benchmark runs this on the same two
        # cores as what it measures, two requests per inbound message.
        raw = await _body(receive)
        path: str = scope["path"]
        headers = dict(scope["headers"])
        record = Received(time.time(), match["number"] if match else "", None, "invalid")
        record.in_flight = in_flight
        try:
            record.body = json.loads(raw)
        except ValueError:
            record.body = raw.decode("utf-8", "replace")
        try:
            if match is None or match["version"] != self.version:
                raise Invalid(100, f"Unknown path components: {path}")
            if headers.get(b"authorization") != self._bearer:
                raise Invalid(190, "Invalid OAuth access token")
            if not headers.get(b"content-type", b"").startswith(b"application/json"):
                raise Invalid(100, "Content-Type must be application/json")
            record.kind = validate(record.body)
            if record.kind == "message":  # kept apart: it is not part of what the customer gets
                record.callback_data = record.body.pop("biz_opaque_callback_data", "")
            if record.kind == "message":
                self._check_delivery(record.body)
        except Invalid as exc:
            status, payload = meta_error_body(exc.code, exc.details)
            record.status, record.error_code = status, exc.code
            self._record(record)
            await _answer(send, status, payload)
            return
        fault = self._take_fault(record.body, record.kind)
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.kind == "drop":
            self._record(record)
            _drop_connection(send)
            return
        if fault is not None and fault.kind == "error":
            record.error_code = fault.code
            if fault.code is not None:
                status, payload = meta_error_body(fault.code)
                record.status = fault.status or status
                self._record(record)
                await _answer(send, record.status, payload)
            else:
                record.status = fault.status or 500
                self._record(record)
                await Response("Internal Server Error", record.status)(scope, receive, send)
            return
        if record.kind == "read":
            record.status = 200
            self._record(record)
            await _answer_bytes(send, 200, _READ_ANSWER)
            return
        to = record.body["to"]
        record.status = 200
        record.wa_message_id = meta_message_id(to.lstrip("+"), f"STANDIN{next(self._ids):010d}")
        self._record(record)
        if self.statuses is not None:
            self._report(record, self.statuses)
        if self.on_accept is not None:
            self.on_accept(record)
        await _answer_bytes(send, 200, _message_answer(to, record.wa_message_id))

    def _report(self, record: Received, statuses: StatusWebhooks) -> None:
        """Queue `record`'s status webhook, signed as Meta signs it, for the status senders."""
        if self._status_queue is None:
            self._status_queue = asyncio.Queue()
            self._status_client = httpx.AsyncClient(
                timeout=5.0,
                limits=httpx.Limits(
                    max_connections=statuses.senders, max_keepalive_connections=statuses.senders
                ),
            )
            self._status_senders = [
                asyncio.create_task(self._send_statuses(statuses), name=f"status-sender-{n}")
                for n in range(statuses.senders)
            ]
        body = json.dumps(status_webhook(record)).encode()
        digest = hmac.new(statuses.app_secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={digest}"}
        now = time.monotonic()
        due = _Due(now + statuses.delay, body, headers, now + statuses.delay + statuses.give_up)
        self._status_queue.put_nowait(due)

    async def _send_statuses(self, statuses: StatusWebhooks) -> None:
        """One status sender: posts queued statuses in turn; one that fails goes back to the queue
        after a backoff (to the next URL), until it is taken or its time to give up has come."""
        assert self._status_queue is not None and self._status_client is not None
        queue, client = self._status_queue, self._status_client
        loop = asyncio.get_running_loop()
        while True:
            due = await queue.get()
            wait = due.at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            url = statuses.urls[due.attempt % len(statuses.urls)]
            try:
                response = await client.post(url, content=due.body, headers=due.headers)
                if response.status_code == 200:
                    continue
            except httpx.HTTPError:
                pass
            if time.monotonic() > due.give_up:
                continue
            backoff = min(2.0, 0.1 * 2 ** (due.attempt // len(statuses.urls)))
            due.attempt += 1
            due.at = time.monotonic() + backoff
            loop.call_later(backoff, queue.put_nowait, due)  # a sender is free meanwhile

    def _build(self) -> Any:
        async def add_fault(request: Request) -> Response:
            options = await request.json()
            fault = self.fail(**options)
            return JSONResponse(asdict(fault))

        async def clear_faults(request: Request) -> Response:
            self.heal()
            return Response(status_code=204)

        async def list_received(request: Request) -> Response:
            since = int(request.query_params.get("since", "0"))
            return JSONResponse([asdict(r) for r in self.received()[since:]])

        async def clear_received(request: Request) -> Response:
            self.reset()
            return Response(status_code=204)

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            for task in self._status_senders:
                task.cancel()
            await asyncio.gather(*self._status_senders, return_exceptions=True)
            self._status_senders = []
            self._status_queue = None
            if self._status_client is not None:
                await self._status_client.aclose()
                self._status_client = None

        control = Starlette(
            lifespan=lifespan,
            routes=[
                Route("/_standin/faults", add_fault, methods=["POST"]),
                Route("/_standin/faults", clear_faults, methods=["DELETE"]),
                Route("/_standin/requests", list_received, methods=["GET"]),
                Route("/_standin/requests", clear_received, methods=["DELETE"]),
            ],
        )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["path"].startswith("/_standin/"):
                await control(scope, receive, send)
            elif scope["type"] == "http" and scope["method"] == "POST":
                await self._messages(scope, receive, send)
            elif scope["type"] == "http":
                status, payload = meta_error_body(100, "Unsupported request")
                await JSONResponse(payload, status_code=status)(scope, receive, send)
            else:
                await control(scope, receive, send)  # lifespan

        return app


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, payload: Any) -> None:
    await _answer_bytes(send, status, json.dumps(payload).encode())


async def _answer_bytes(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_READ_ANSWER = json.dumps({"success": True}).encode()


def _message_answer(to: str, wa_message_id: str) -> bytes:
    """Meta's answer to an accepted message: the bytes json.dumps makes of it, from a template
    (half the stand-in's answers are these; a third of the CPU of encoding the nested dict)."""
    to_json, wa_id_json = json.dumps(to), json.dumps(to.lstrip("+"))
    contacts = f'[{{"input": {to_json}, "wa_id": {wa_id_json}}}]'
    messages = f'[{{"id": {json.dumps(wa_message_id)}}}]'
    answer = f'{{"messaging_product": "whatsapp", "contacts": {contacts}, "messages": {messages}}}'
    return answer.encode()


def _drop_connection(send: Send) -> None:
    # ASGI has no way to close a connection without answering; uvicorn's `send` is a bound method of
    # its request cycle, which holds the socket's transport. Closing it is what a crashed Meta
    # front end looks like: the request was read, no byte of an answer comes back.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("dropping a connection needs uvicorn's send(); run under uvicorn")
    transport.close()


class ServerThread:
    """Serves an ASGI app with a real uvicorn on a loopback port, in a background thread."""

    def __init__(self, app: Any, *, port: int = 0, **config: Any) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        options = {"log_config": None, "access_log": False, "lifespan": "auto", "ws": "none"}
        self.server = uvicorn.Server(uvicorn.Config(app, **(options | config)))
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"uvicorn-{self.port}")

    def _run(self) -> None:
        self.server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class StandinServer(ServerThread):
    """A Standin on a loopback port: `with StandinServer() as graph: graph.standin.fail(...)`."""

    def __init__(self, standin: Standin | None = None, *, port: int = 0) -> None:
        self.standin = standin or Standin()
        super().__init__(self.standin.app, port=port, **SERVER_OPTIONS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--token", default="test-access-token", help="the bearer token to accept")
    parser.add_argument("--version", default="v25.0", help="the Graph API version in paths")
    parser.add_argument(
        "--statuses-to",
        action="append",
        default=[],
        help="a webhook URL to send a signed `sent` status to for each accepted message, as Meta "
        "does (repeatable: the next one is tried when one fails)",
    )
    parser.add_argument(
        "--app-secret", default="", help="the secret status webhooks are signed with"
    )
    args = parser.parse_args()
    statuses = StatusWebhooks(args.statuses_to, args.app_secret) if args.statuses_to else None
    standin = Standin(access_token=args.token, version=args.version, statuses=statuses)
    tune_garbage_collector()  # as the services do: it shares the benchmark's cores with them
    uvicorn.run(
        standin.app,
        host=args.host,
        port=args.port,
        access_log=False,
        loop="uvloop",
        ws="none",
        **SERVER_OPTIONS,
    )


if __name__ == "__main__":
    main()
