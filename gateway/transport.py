"""How the sender reaches the Graph API: one POST to a fixed endpoint, its status and its body.

aiohttp's connection pool, not httpcore's: it takes much less CPU per request, and the gateway
makes two Graph API requests per inbound message (the reply and the mark-as-read). Requests go to
aiohttp without httpx's request and response objects around them either: a POST of bytes with
fixed headers needs none of their URL, header and stream handling.

A failure is reported by *when* it happened, because the sender's at-least-once rule depends on it:
failing to connect (or to get a pooled connection in time) means nothing left (NotSent); a dropped
connection or a read timeout after the request was written may mean Meta got it (MaybeSent).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Protocol

import aiohttp
import yarl

# An idle pooled connection is closed after this: well before servers' own idle timeouts, so a
# request rarely goes out on a connection the other side is closing.
KEEPALIVE_SECONDS = 5.0


class NotSent(Exception):
    """Failed before any byte of the request left: a retry cannot duplicate anything."""


class MaybeSent(Exception):
    """Failed after (part of) the request went out: Meta may have acted on it."""


class Transport(Protocol):
    """One POST of `content` to `url`: (status, body), or NotSent / MaybeSent."""

    async def post(
        self, url: str, headers: Mapping[str, str], content: bytes
    ) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class AiohttpTransport:
    """One aiohttp ClientSession (one connection pool), opened on first use inside the loop."""

    def __init__(self, *, max_connections: int, connect_seconds: float, read_seconds: float):
        self._max_connections = max_connections
        self._timeout = aiohttp.ClientTimeout(
            # `connect` in aiohttp includes waiting for a pooled connection.
            connect=read_seconds + connect_seconds,
            sock_connect=connect_seconds,
            sock_read=read_seconds,
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS
        )
        # The caller's headers go out as given (Content-Type, Authorization, ...); the cookie
        # jar is off: the Graph API sets none that matter, and a jar is work per request.
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
            timeout=self._timeout,
        )

    async def post(self, url: str, headers: Mapping[str, str], content: bytes) -> tuple[int, bytes]:
        if self._session is None:
            self._session = self._open()
        try:
            async with self._session.post(
                _parsed(url), headers=headers, data=content, allow_redirects=False, compress=False
            ) as response:
                return response.status, await response.read()
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            raise NotSent(str(exc) or type(exc).__name__) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            # A read timeout, or disconnected or reset after (part of) the request went out.
            raise MaybeSent(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


@functools.lru_cache(maxsize=256)
def _parsed(url: str) -> yarl.URL:
    """Parsing a URL is much of what starting a request costs; there are few business numbers."""
    return yarl.URL(url)
