"""How uvicorn serves the gateway, the same for `python -m gateway` and the tests.

httptools parses requests (in C, for less CPU per webhook than h11). uvicorn bounds neither how
long a client may take to send a request head nor how many connections are open, so
`GatewayProtocol`, uvicorn's httptools protocol with a few lines added, does:

- the head's size: httptools keeps a header line of any length in memory until it ends, so a head
  that grows past `max_header_bytes` gets 431 and the connection is closed, as h11 does with the
  same uvicorn setting, also when it drips in (a head that arrives in one read is bounded by the
  read size);
- the head's time: from the connection's first moment (or a keep-alive request's first byte) the
  whole head must arrive within `head_timeout_seconds`, else 408 and the connection is closed;
  idle time between keep-alive requests is uvicorn's `timeout_keep_alive` (`idle_timeout_seconds`),
  and the body's time is the webhook's own (`body_timeout_seconds`, 408);
- a response sent before its request's body was all read (a 408, a 413, an endpoint that reads no
  body) closes the connection: the rest of that body is never parsed as a next request;
- open connections: past `max_connections` in this process, a new connection is answered 503 and
  closed at once, so that idle sockets cannot take the file descriptors that webhooks, flowsvc
  calls and Graph API sends need.
"""

from __future__ import annotations

import functools
from asyncio import TimerHandle, Transport
from typing import Any

from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # h11 exports it only here
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings


def _closing_answer(status: bytes, reason: bytes, *headers: bytes) -> bytes:
    extra = b"".join(header + b"\r\n" for header in headers)
    return (
        b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n%s\r\n%s" % (status, len(reason), extra, reason)
    )


_TOO_LARGE = _closing_answer(
    b"431 Request Header Fields Too Large", b"Request header fields too large"
)
_TOO_SLOW = _closing_answer(b"408 Request Timeout", b"Request head not received in time")
_BUSY = _closing_answer(b"503 Service Unavailable", b"Too many connections", b"retry-after: 1")


class GatewayProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the request head bounded in size and time, and the open
    connections of the process bounded (see the module docstring)."""

    head_timeout_seconds: float = Settings.head_timeout_seconds
    max_connections: int = Settings.max_connections

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        self._max_head = limit or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # h11's, when unset
        self._in_head = True  # between a request's first byte and the end of its headers
        self._in_body = False  # between the end of a request's headers and the end of its body
        self._head_bytes = 0
        self._head_timer: TimerHandle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self._close_with(_BUSY)
            return
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self._max_head:
            self._close_with(_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._in_head, self._in_body = False, True
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._in_body = True, False

    def on_response_complete(self) -> None:
        unread_body = self._in_body and not self.pipeline  # this response's request, not a next one
        super().on_response_complete()
        if unread_body and not self.transport.is_closing():
            self.transport.close()

    def _start_head_timer(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_timeout_seconds, self._head_too_slow)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # a pipelined head: closed once this response is sent
        else:
            self._close_with(_TOO_SLOW)

    def _close_with(self, answer: bytes) -> None:
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()


class WorkerProtocol(GatewayProtocol):
    """`GatewayProtocol` with the bounds of the environment's settings, for GATEWAY_WORKERS > 1.

    uvicorn hands its config to each worker process by pickling it, and a class is pickled by
    its name: the class `protocol()` makes at run time has none a worker could import. This one
    has, and reads the bounds in the worker, from the same environment as the worker's app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = _environment_settings()
        self.head_timeout_seconds = settings.head_timeout_seconds
        self.max_connections = settings.max_connections
        super().__init__(*args, **kwargs)


_environment_settings = functools.cache(Settings.from_env)


def protocol(settings: Settings) -> type[GatewayProtocol]:
    """`GatewayProtocol` with these settings' bounds (uvicorn builds one per connection)."""
    if settings.workers > 1:
        return WorkerProtocol
    bounds = {
        "head_timeout_seconds": settings.head_timeout_seconds,
        "max_connections": settings.max_connections,
    }
    return type("GatewayProtocol", (GatewayProtocol,), bounds)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": protocol(settings),
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.idle_timeout_seconds,
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "server_header": False,
        # Nothing in the gateway reads the client's address or scheme, so uvicorn's
        # X-Forwarded-* rewrite (on by default, for 127.0.0.1) would only cost every webhook a
        # middleware layer and a scan of its headers.
        "proxy_headers": False,
    }
