"""How flowsvc listens: TLS (client certificates optional) when configured, else plaintext."""

from __future__ import annotations

from pathlib import Path

import grpc

from flowsvc.settings import Settings, SettingsError


def _read(setting: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise SettingsError(f"{setting}={path}: cannot read it ({error.strerror})") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials from the PEM files the settings name, or None for plaintext."""
    if not (settings.tls_cert and settings.tls_key):
        return None
    chain = _read("FLOWSVC_TLS_CERT", settings.tls_cert)
    key = _read("FLOWSVC_TLS_KEY", settings.tls_key)
    client_ca = (
        _read("FLOWSVC_TLS_CLIENT_CA", settings.tls_client_ca) if settings.tls_client_ca else None
    )
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def add_port(server: grpc.aio.Server, settings: Settings) -> int:
    """Bind `settings.listen` (TLS or plaintext); returns the port, which may have been 0."""
    credentials = server_credentials(settings)
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    if not port:
        raise OSError(f"cannot listen on {settings.listen} (FLOWSVC_LISTEN)")
    return port
