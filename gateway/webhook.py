"""The webhook endpoints: Meta's verification handshake (GET) and signed notifications (POST)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gateway import signature
from gateway.payload import parse, updates
from menuflow.logs import log

logger = logging.getLogger("gateway.webhook")
MAX_REFUSALS_LOGGED = 10  # per POST: a flood of bad items is counted, not logged line by line
# Every accepted POST gets the same answer: built once (a Response holds no per-request state).
_OK = PlainTextResponse("OK")


class Rejected(HTTPException):
    """A webhook POST answered with an error; `result` is its metric label."""

    def __init__(self, status_code: int, result: str, detail: str) -> None:
        super().__init__(status_code, detail)
        self.result = result


async def verify(request: Request) -> Response:
    """Meta's handshake: echo hub.challenge when the mode is subscribe and the token matches."""
    params = request.query_params
    token_ok = signature.same_secret(
        request.state.settings.verify_token, params.get("hub.verify_token", "")
    )
    if params.get("hub.mode") == "subscribe" and token_ok:
        log(logger, logging.INFO, "verify.ok")
        return PlainTextResponse(params.get("hub.challenge", ""))
    log(logger, logging.WARNING, "verify.refused", mode=params.get("hub.mode", ""))
    return PlainTextResponse("Forbidden", status_code=403)


async def _read_body(request: Request, limit: int, seconds: float) -> bytes:
    """The raw body, refused past `limit` bytes (413) or when it takes over `seconds` to arrive
    (408): a client dripping a body byte by byte must not hold a connection for ever."""
    try:
        async with asyncio.timeout(seconds):
            return await _read_within(request, limit)
    except TimeoutError:
        raise Rejected(408, "slow_body", f"Body not received within {seconds:g} s") from None


async def _read_within(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise Rejected(400, "bad_request", "Invalid Content-Length")
        if int(length) > limit:
            raise Rejected(413, "too_large", f"Body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, "too_large", f"Body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def receive(request: Request) -> Response:
    """Verify, parse and record a webhook; 200 only once FlowService holds every message in it."""
    started = time.monotonic()
    state = request.state
    settings = state.settings
    body = await _read_body(request, settings.max_body_bytes, settings.body_timeout_seconds)
    if settings.app_secret or not settings.dev_mode:
        headers = request.headers.getlist("x-hub-signature-256")
        if not signature.is_valid(settings.app_secret, body, headers):
            raise Rejected(401, "bad_signature", "Invalid signature")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise Rejected(400, "bad_json", "Malformed JSON") from None
    if not isinstance(document, dict):
        raise Rejected(400, "bad_json", "Not a webhook object")
    if updates(document) > settings.max_updates:  # counted before anything is built
        raise Rejected(413, "too_many_updates", f"More than {settings.max_updates} updates")
    parsed = parse(document)
    if any(m.ByteSize() > settings.batch_max_bytes for m in parsed.messages):
        # Never sent, so never refused after the 200: FlowService takes a batch of this size.
        raise Rejected(413, "message_too_large", "A message larger than a batch may be")
    metrics = state.metrics
    for message_id, reason in parsed.refused[:MAX_REFUSALS_LOGGED]:
        log(
            logger, logging.WARNING, "webhook.message_refused", message_id=message_id, reason=reason
        )
    if parsed.skipped or parsed.ignored:
        metrics.webhook_items.labels(kind="item", fate="skipped").inc(parsed.skipped)
        metrics.webhook_items.labels(kind="change", fate="ignored").inc(parsed.ignored)
        log(
            logger,
            logging.INFO,
            "webhook.partly_ignored",
            skipped=parsed.skipped,
            ignored=parsed.ignored,
        )
    if not await state.inbox.record(parsed):
        raise Rejected(503, "flowsvc_unavailable", "Could not record every message; retry")
    metrics.webhooks.labels(result="ok").inc()
    metrics.webhook_seconds.observe(time.monotonic() - started)
    return _OK
