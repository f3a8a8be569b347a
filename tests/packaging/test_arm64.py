"""The arm64 package on an aarch64 CPython: Debian 12's own arm64 python3.11, run under qemu-user.

A sysroot is made of Debian 12 arm64 packages (python3.11, python3.11-venv and their libraries,
fetched by packaging/install-test-deps.sh with `apt-get download`) plus the extracted arm64 .deb.
Inside it (chroot, each aarch64 program started through qemu-aarch64-static explicitly, as no
binfmt handler is registered here) the venv is created, the shipped wheels are installed offline,
and the agent runs: --version, check-config, and a few seconds of `run` that must leave Arrow
batches in the spool, which the host's edgecollect then reads.

Deviations from postinst, both forced by running without binfmt_misc: the venv is made with
--without-pip and pip runs from Debian's pip wheel (ensurepip would exec the venv's python, which
the kernel cannot start here), and the console script is started as `python .../edgecollect`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import VERSION, need

pytestmark = pytest.mark.integration

DEBS = Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
) / "edgecollect-deb" / "arm64-sysroot-debs"
QEMU = "/usr/bin/qemu-aarch64-static"
# No PIP_* from the host (find-links, indexes): only the wheels in the package may be used.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PIP_CONFIG_FILE": "/dev/null"}


@pytest.fixture
def sysroot(debs: dict[str, Path], tmp_path: Path) -> Iterator[Path]:
    assert os.geteuid() == 0, "chroot needs root (CI runs as root)"
    need("qemu-aarch64-static")
    packages = sorted(DEBS.glob("*.deb"))
    assert any(p.name.startswith("python3.11-minimal_") for p in packages), (
        f"no Debian arm64 python in {DEBS}: run packaging/install-test-deps.sh"
    )
    root = tmp_path / "sysroot"
    for deb in [*packages, debs["arm64"]]:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    shutil.copy2(QEMU, root / "usr/bin/qemu-aarch64-static")
    (root / "tmp").mkdir(exist_ok=True)
    (root / "proc").mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)  # psutil reads it
    try:
        yield root
    finally:
        subprocess.run(["umount", str(root / "proc")], check=True)


def aarch64(root: Path, *argv: str, env: dict[str, str] | None = None, timeout: float = 600
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [need("chroot"), str(root), "/usr/bin/qemu-aarch64-static", *argv],
        capture_output=True, text=True, env={**CLEAN_ENV, **(env or {})}, timeout=timeout,
    )


def test_arm64_package_runs_on_aarch64_python(sysroot: Path, tmp_path: Path) -> None:
    root = sysroot
    machine = aarch64(root, "/usr/bin/python3.11", "-c", "import platform; print(platform.machine())")
    assert machine.stdout.strip() == "aarch64", machine.stderr

    venv = "/opt/edgecollect/venv"
    made = aarch64(root, "/usr/bin/python3.11", "-m", "venv", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    pip = next((root / "usr/share/python-wheels").glob("pip-*.whl"))
    installed = aarch64(
        root, f"{venv}/bin/python", f"/usr/share/python-wheels/{pip.name}/pip", "install", "--quiet",
        "--no-index", "--no-cache-dir", "--disable-pip-version-check",
        "--find-links", "/opt/edgecollect/wheels/cp311", f"edgecollect=={VERSION}",
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    cli = (f"{venv}/bin/python", f"{venv}/bin/edgecollect")
    version = aarch64(root, *cli, "--version")
    assert version.stdout.strip() == f"edgecollect {VERSION}", version.stderr
    state = {"STATE_DIRECTORY": "/var/lib/edgecollect"}
    check = aarch64(root, *cli, "check-config", "/etc/edgecollect/edgecollect.toml", env=state)
    assert check.returncode == 0, check.stderr

    # A few seconds of the real pipeline on aarch64: host metrics -> ring -> Arrow/zstd -> spool.
    config = root / "tmp/fast.toml"
    config.write_text("[batch]\nflush_interval = '1s'\n[sources.host]\ninterval = '1s'\n")
    agent = subprocess.Popen(
        [need("chroot"), str(root), "/usr/bin/qemu-aarch64-static", *cli, "run", "-c", "/tmp/fast.toml"],
        env={**CLEAN_ENV, **state}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    spool = root / "var/lib/edgecollect/spool"
    try:
        deadline = time.monotonic() + 300  # a bound against hanging, not a performance claim
        while time.monotonic() < deadline and not list(spool.glob("*.ecb")) and agent.poll() is None:
            time.sleep(0.5)
        agent.send_signal(signal.SIGTERM)
        _, stderr = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    assert agent.returncode == 0, stderr
    assert list(spool.glob("*.ecb")), stderr

    # The host (x86_64) edgecollect reads what the aarch64 one spooled: same format on both.
    listing = subprocess.run(
        [sys.executable, "-m", "edgecollect", "spool", "ls"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "STATE_DIRECTORY": str(root / "var/lib/edgecollect")},
    )
    assert listing.returncode == 0, listing.stderr
    assert "metrics" in listing.stdout, listing.stdout
