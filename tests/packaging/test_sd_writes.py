"""packaging/measure-sd-writes.sh, the method behind the README's bytes-per-day figures, on a short
run: a real agent on a real ext4 loop device, its spool batches counted against device sectors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.conftest import ROOT, need

pytestmark = pytest.mark.integration


def test_measures_device_writes_of_a_short_run(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "mount -o loop needs root (CI runs as root)"
    for tool in ("losetup", "mkfs.ext4", "mount"):
        need(tool)
    config = tmp_path / "fast.toml"
    config.write_text("[batch]\nflush_interval = '1s'\n[sources.host]\ninterval = '1s'\n")
    proc = subprocess.run(
        [str(ROOT / "packaging" / "measure-sd-writes.sh"), str(config), "10"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "EDGECOLLECT": f"{sys.executable} -m edgecollect", "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    print(proc.stdout)
    files, batch_bytes = map(int, re.search(r"spool: (\d+) files, (\d+) bytes", proc.stdout).groups())  # type: ignore[union-attr]
    device = int(re.search(r"= (\d+) bytes written", proc.stdout).group(1))  # type: ignore[union-attr]
    per_day = int(re.search(r"per day: (\d+) bytes written", proc.stdout).group(1))  # type: ignore[union-attr]
    assert files >= 3, proc.stdout  # a batch a second for 10 s (and one at shutdown)
    # Every batch byte reached the device, plus the file system's bookkeeping for each fsync.
    assert device > batch_bytes > 0
    assert per_day == device * 86400 // 10
