"""How uvicorn serves the gateway, the same for `python -m gateway` and the tests.

h11 rather than httptools: h11 refuses a request whose headers pass `max_header_bytes` (400 and the
connection closed; a head that arrives in one read is bounded by the read size), while httptools
reads headers of any size into memory. The parser is a
small share of the gateway's cost per webhook (see the README's performance section).
"""

from __future__ import annotations

from typing import Any

from gateway.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": 75,  # longer than Meta's and most proxies' idle timeouts
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "server_header": False,
    }
