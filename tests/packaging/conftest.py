"""Shared by the packaging tests: the version, tool checks, and one build of both .deb packages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "packaging" / "build-deb.py"
_VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
assert _VERSION
VERSION = _VERSION.group(1)


def need(tool: str) -> str:
    found = shutil.which(tool)
    assert found, f"{tool} is missing: run packaging/install-test-deps.sh"
    return found


@pytest.fixture(scope="session")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """edgecollect_<version>_{amd64,arm64}.deb, built once per test session (wheels cached)."""
    need("dpkg-deb")
    out = tmp_path_factory.mktemp("debs")
    proc = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(out)], capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = {arch: out / f"edgecollect_{VERSION}_{arch}.deb" for arch in ("amd64", "arm64")}
    for deb in found.values():
        assert deb.is_file(), proc.stderr[-4000:]
    return found
