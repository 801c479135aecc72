"""An httpx transport backed by aiohttp: the httpx API, at a fraction of httpcore's CPU per request.

httpcore's connection pool costs ~1.7 ms of CPU per request at 50 in flight (PERF-NOTES.md); the
gateway makes two Graph API requests per inbound message (the reply and the mark-as-read), which
made it the biggest single cost of the whole path. aiohttp's pool does the same work in well under
a tenth of that. The transport maps aiohttp's errors onto httpx's by *when* they happen, because
the sender's at-least-once rule depends on it: failing to connect (or to get a pooled connection
in time) means nothing left; a dropped connection or a read timeout after the request was written
may mean Meta got it.
"""

from __future__ import annotations

import aiohttp
import httpx


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp ClientSession (one connection pool), opened on first use inside the loop."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self._limits.keepalive_expiry or 0,
        )
        # The caller's headers go out as given (Content-Type, Authorization, ...); the cookie
        # jar is off: the Graph API sets none that matter, and a jar is work per request.
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,  # httpx decodes by Content-Encoding, as with its own transport
            skip_auto_headers=("User-Agent",),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._session is None:
            self._session = self._open()
        timeout = request.extensions.get("timeout", {})
        content = await request.aread()
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=content or None,
                allow_redirects=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    # `connect` in aiohttp includes waiting for a pooled connection: httpx's pool
                    # timeout plus its connect timeout.
                    connect=_add(timeout.get("pool"), timeout.get("connect")),
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                ),
            ) as response:
                body = await response.read()
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timed out", request=request) from exc
        except aiohttp.ClientPayloadError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            # Disconnected or reset after (part of) the request went out: Meta may have it.
            raise httpx.RemoteProtocolError(
                str(exc) or type(exc).__name__, request=request
            ) from exc
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            content=body,
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _add(first: float | None, second: float | None) -> float | None:
    if first is None or second is None:
        return None
    return first + second
