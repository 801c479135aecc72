"""The Graph API client: one POST per outbox message, each answer turned into a Verdict.

Ambiguous outcomes. Meta's /messages endpoint has no idempotency key, so when a request may have
reached Meta but no answer came back (a read timeout, or the connection dropped after the request
was written) nobody can know whether the message was accepted. We choose **at-least-once**: such a
send is retried like a network error, flagged `ambiguous` in logs and metrics
(sends_total{code="ambiguous"}). A lost reply is worse for a menu than a rare duplicate one (the
customer would be stuck waiting). To keep duplicates rare: the read timeout is generous
(GRAPH_TIMEOUT_SECONDS, default 20 s, while Meta answers in well under a second); errors that happen
before the request is written (connect errors and timeouts, pool timeouts) are not ambiguous and are
retried freely; an ambiguous send is retried only after a backoff of at least a few seconds; and
once Meta has answered 200 the message is never sent again (the ack is retried until FlowService
records it, and AckOutbox records "sent" even after the lease passed to another sender).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from urllib.parse import urlsplit

from gateway.settings import Settings
from gateway.transport import AiohttpTransport, MaybeSent, NotSent, Transport
from gateway.verdict import Verdict, classify, network_error
from menuflow.logs import log, mask_message_id, mask_phone

logger = logging.getLogger("gateway.sender")
_READ = b'{"messaging_product": "whatsapp", "status": "read", "message_id": %s}'


class GraphSender:
    """Sends Graph API request bodies from a business number and classifies the answers."""

    def __init__(self, settings: Settings, transport: Transport | None = None):
        if transport is None:
            transport = (
                DevTransport()
                if settings.dev_mode
                else AiohttpTransport(
                    max_connections=settings.send_concurrency,
                    connect_seconds=settings.graph_connect_seconds,
                    read_seconds=settings.graph_timeout_seconds,
                )
            )
        self.transport = transport
        self._base = settings.graph_base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {settings.access_token}",
            "Content-Type": "application/json",
        }
        self._total = settings.send_budget_seconds  # connect + write + read must fit the lease
        self._cap = settings.send_backoff_max_seconds

    async def __aenter__(self) -> GraphSender:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def send(
        self, phone_number_id: str, body_json: str, attempts: int, pair_rate_hits: int = 0
    ) -> Verdict:
        """POST one message; `attempts` counts this attempt (1 for the first), `pair_rate_hits`
        the recipient's recent 131056 answers (their backoff grows with each)."""
        try:
            async with asyncio.timeout(self._total):
                status, content = await self._post(phone_number_id, body_json.encode())
        except NotSent:
            return network_error(attempts, ambiguous=False, cap=self._cap)
        except (MaybeSent, TimeoutError):
            return network_error(attempts, ambiguous=True, cap=self._cap)
        return classify(status, content, attempts, pair_rate_hits, cap=self._cap)

    async def mark_read(self, phone_number_id: str, message_id: str) -> bool:
        """Best effort: blue ticks for the customer's message; never retried."""
        # The body around the id, fixed: formatted, not built and dumped as a dict, per message.
        body = _READ % json.dumps(message_id).encode()
        try:
            status, content = await self._post(phone_number_id, body)
        except (NotSent, MaybeSent) as exc:
            log(
                logger,
                logging.INFO,
                "read.error",
                msg_id=mask_message_id(message_id),
                error=type(exc).__name__,
            )
            return False
        if status != 200:
            verdict = classify(status, content, 1)
            log(
                logger,
                logging.INFO,
                "read.rejected",
                msg_id=mask_message_id(message_id),
                code=verdict.label,
            )
            return False
        return True

    async def _post(self, phone_number_id: str, content: bytes) -> tuple[int, bytes]:
        url = f"{self._base}/{phone_number_id}/messages"
        return await self.transport.post(url, self._headers, content)


class DevTransport:
    """Dev mode's outside world: logs each outbound body as one line and answers like Meta."""

    async def post(self, url: str, headers: Mapping[str, str], content: bytes) -> tuple[int, bytes]:
        body = json.loads(content or b"{}")
        if isinstance(body, dict) and isinstance(body.get("to"), str):
            body["to"] = mask_phone(body["to"])
        if isinstance(body, dict) and isinstance(body.get("message_id"), str):
            body["message_id"] = mask_message_id(body["message_id"])
        path = urlsplit(url).path
        log(logger, logging.WARNING, "dev.outbound", path=path, body=json.dumps(body))
        if isinstance(body, dict) and body.get("status") == "read":
            return 200, b'{"success":true}'
        wa_id = f"wamid.DEV{uuid.uuid4().hex.upper()}"
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body.get("to", ""), "wa_id": body.get("to", "")}],
            "messages": [{"id": wa_id}],
        }
        return 200, json.dumps(answer).encode()

    async def aclose(self) -> None:
        pass
