"""Throwaway TLS certificates for tests, made with the openssl command line: a CA, a server
certificate for localhost and 127.0.0.1, and a client certificate."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

LEAF_EXTENSIONS = {
    "server": "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    "client": "extendedKeyUsage=clientAuth\n",
}


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path

    @property
    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    @property
    def key_pem(self) -> bytes:
        return self.key.read_bytes()


@dataclass(frozen=True)
class Authority:
    """A CA and the certificates it issued."""

    ca: Pair
    server: Pair
    client: Pair


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def _key_and_request(folder: Path, name: str, subject: str) -> tuple[Path, Path]:
    key, request = folder / f"{name}.key", folder / f"{name}.csr"
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", request, "-subj", subject,
    )  # fmt: skip
    return key, request


def issue(folder: Path, name: str = "test") -> Authority:
    """A new CA in `folder` with a server and a client certificate, valid for a day."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = folder / f"{name}-ca.key", folder / f"{name}-ca.pem"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", ca_key, "-out", ca_cert, "-days", "1", "-subj", f"/CN=menuflow {name} CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    leaves = {}
    for role, extensions in LEAF_EXTENSIONS.items():
        key, request = _key_and_request(folder, f"{name}-{role}", f"/CN=menuflow {name} {role}")
        extfile = folder / f"{name}-{role}.ext"
        extfile.write_text(extensions)
        cert = folder / f"{name}-{role}.pem"
        _openssl(
            "x509", "-req", "-in", request, "-CA", ca_cert, "-CAkey", ca_key, "-CAcreateserial",
            "-out", cert, "-days", "1", "-extfile", extfile,
        )  # fmt: skip
        leaves[role] = Pair(cert, key)
    return Authority(ca=Pair(ca_cert, ca_key), server=leaves["server"], client=leaves["client"])
