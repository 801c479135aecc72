"""Generates the gRPC stubs (menuflow/v1/) from proto/ when the package is built and they are
missing or older than the .proto, so that a wheel or `pip install .` holds them; the rest of the
build is pyproject.toml's. (`make proto` generates them for development, with mypy-protobuf's
richer .pyi files, which this leaves alone.)"""

from __future__ import annotations

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
PROTO = ROOT / "proto" / "menuflow" / "v1" / "flow.proto"
STUB = ROOT / "menuflow" / "v1" / "flow_pb2.py"


class BuildWithStubs(build_py):
    """build_py that first writes menuflow/v1/flow_pb2*.py(i) beside the sources."""

    def run(self) -> None:
        if PROTO.exists() and (not STUB.exists() or STUB.stat().st_mtime < PROTO.stat().st_mtime):
            import google.rpc
            from grpc_tools import protoc

            google_protos = Path(google.rpc.__path__[0]).parents[1]
            arguments = [
                "grpc_tools.protoc",
                f"-I{ROOT / 'proto'}",
                f"-I{google_protos}",
                f"-I{Path(protoc.__file__).parent / '_proto'}",
                f"--python_out={ROOT}",
                f"--grpc_python_out={ROOT}",
                str(PROTO),
            ]
            if not STUB.with_suffix(".pyi").exists():
                arguments.insert(-1, f"--pyi_out={ROOT}")
            if protoc.main(arguments) != 0:
                sys.exit("generating the gRPC stubs from proto/ failed")
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
