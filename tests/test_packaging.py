"""`pip install` of the project gives both services, the client and the `menuflow` command: a
wheel built from a checkout without generated stubs holds them (setup.py generates them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_a_wheel_from_a_fresh_checkout_holds_stubs_client_and_command(tmp_path: Path) -> None:
    source = tmp_path / "menuflow"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, source)
    ignore = shutil.ignore_patterns("__pycache__", "*_pb2*.py", "*_pb2*.pyi")
    for package in ("proto", "menuflow", "flowsvc", "gateway"):
        shutil.copytree(ROOT / package, source / package, ignore=ignore)
    assert not list((source / "menuflow" / "v1").glob("*_pb2*"))

    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip

    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("menuflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {
        "menuflow/v1/flow_pb2.py",
        "menuflow/v1/flow_pb2_grpc.py",
        "menuflow/client/__init__.py",
        "menuflow/cli/__init__.py",
        "flowsvc/server.py",
        "flowsvc/default_templates/main_menu.json",
        "gateway/app.py",
    } <= names
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    assert "menuflow = menuflow.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
