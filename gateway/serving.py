"""How uvicorn serves the gateway, the same for `python -m gateway` and the tests.

httptools parses requests (in C, for less CPU per webhook than h11), with one thing added:
httptools keeps a header line of any length in memory until it ends, so `BoundedHeadProtocol`
refuses a request whose head grows past `max_header_bytes` (431, connection closed), as h11 does
with the same uvicorn setting. A head that arrives in one read is bounded by the read size.
"""

from __future__ import annotations

from typing import Any

from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # h11 exports it only here
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.settings import Settings

_REASON = b"Request header fields too large"
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_REASON), _REASON)
)


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head longer than uvicorn's
    `h11_max_incomplete_event_size`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = self.config.h11_max_incomplete_event_size
        self._max_head = limit or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE  # h11's, when unset
        self._in_head = True  # between a request's first byte and the end of its headers
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > self._max_head:
            if not self.transport.is_closing():
                self.transport.write(_TOO_LARGE)
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": BoundedHeadProtocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": 75,  # longer than Meta's and most proxies' idle timeouts
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "server_header": False,
    }
