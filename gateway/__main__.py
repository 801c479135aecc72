"""`python -m gateway`: read the settings, then serve the app with uvicorn until SIGTERM."""

from __future__ import annotations

import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import Settings, SettingsError
from menuflow.logs import configure_logging


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        sys.exit(f"gateway: {exc}")
    configure_logging("gateway", settings.log_level)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, lets in-flight requests finish, then runs
    # the lifespan's shutdown (pump stopped, sends finished, unsent leases released).
    uvicorn.run(
        create_app(settings),
        host=settings.listen_host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        server_header=False,
    )


if __name__ == "__main__":
    main()
