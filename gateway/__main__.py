"""`python -m gateway`: read the settings, then serve the app with uvicorn until SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from gateway.app import create_app
from gateway.serving import uvicorn_options
from gateway.settings import Settings, SettingsError
from menuflow.logs import configure_logging
from menuflow.ports import cannot_listen
from menuflow.runtime import tune_garbage_collector


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"gateway: {exc}")


def _configure(settings: Settings) -> None:
    configure_logging("gateway", settings.log_level)
    tune_garbage_collector()


def worker_app() -> ASGIApp:
    """The app of one worker process (GATEWAY_WORKERS > 1), built in that process."""
    settings = _settings()
    if os.environ.get("GATEWAY_ID"):
        # Leases belong to one process: workers sharing an id could send each other's messages.
        settings = dataclasses.replace(settings, gateway_id=f"{settings.gateway_id}-{os.getpid()}")
    _configure(settings)
    return create_app(settings)


def _refuse_a_busy_port(settings: Settings) -> None:
    """Exit with one line when the listen address is taken (uvicorn would start the app first,
    then log the bind error among its shutdown lines)."""
    reason = cannot_listen(settings.listen_host, settings.port)
    if reason is not None:
        sys.exit(
            f"gateway: cannot listen on {settings.listen_host}:{settings.port} "
            f"(GATEWAY_LISTEN_HOST, GATEWAY_PORT): {reason}; another gateway may be running "
            "there: stop it, or set GATEWAY_PORT to another port"
        )


def main() -> None:
    settings = _settings()
    _refuse_a_busy_port(settings)
    _configure(settings)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish, then runs
    # the lifespan's shutdown (pump stopped, sends finished, unsent leases released); with several
    # workers it passes the signal on to each of them.
    options: dict[str, Any] = {
        "host": settings.listen_host,
        "port": settings.port,
        "loop": "uvloop",
        **uvicorn_options(settings),
    }
    if settings.workers > 1:
        uvicorn.run(
            "gateway.__main__:worker_app", factory=True, workers=settings.workers, **options
        )
    else:
        uvicorn.run(create_app(settings), **options)


if __name__ == "__main__":
    main()
