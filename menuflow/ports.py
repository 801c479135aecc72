"""Whether a service can listen where it is told to, checked before it starts: a busy port is
one clear line for a person, not a traceback from deep in gRPC or uvicorn."""

from __future__ import annotations

import socket


def split_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` as (host, port); ValueError when it is neither."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(address)
    return host.strip("[]"), int(port)


def cannot_listen(host: str, port: int) -> str | None:
    """Why binding (host, port) fails now, e.g. "address already in use"; None when it works.

    Port 0 (any free port) always works. The probe socket is closed at once; SO_REUSEADDR lets it
    bind where only connections in TIME_WAIT remain, as the servers themselves can.
    """
    if port == 0:
        return None
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        return f"unknown host {host!r} ({error.strerror})"
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as error:
            return error.strerror.lower() if error.strerror else str(error)
    return None
