"""Paths and tool runners for the firmware host tests. A missing tool fails with the command
that installs it (tests/firmware/install-deps.sh), never a skip."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BRIDGES = REPO / "firmware-bridges"
MP_DIR = BRIDGES / "micropython"
ARDUINO_DIR = BRIDGES / "arduino"
GOLDEN = BRIDGES / "slf1" / "golden.json"
HERE = Path(__file__).resolve().parent
INSTALL = "tests/firmware/install-deps.sh"


def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    return data


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed; run {INSTALL}")
    return path


def micropython(script: str, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[bytes]:
    """Run tests/firmware/mp/<script> under the MicroPython unix port with the bridge importable."""
    env = dict(os.environ, MICROPYPATH=f"{MP_DIR}:{HERE / 'mp'}")
    return subprocess.run([tool("micropython"), str(HERE / "mp" / script), *args], env=env,
                          capture_output=True, timeout=timeout, check=False, **kw)
