"""Spool start-up on a damaged and hostile folder: time and peak memory of `Spool.open()`.

    python -m tests.bench.bench_spool_start [DAMAGED_FILES]

Builds, in a temporary folder, DAMAGED_FILES (10,000 by default) small damaged batch files plus one
of every hostile entry (6 GB sparse file, 4 GiB claimed-size file, FIFOs, links to /dev/zero and a
foreign folder) and 20 valid batches, then opens it in a fresh process (tests/core/spool_opener.py)
and prints the open time, the process's VmHWM and the count per quarantine reason, with the
machine it ran on. Run on demand; no test asserts on these figures.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.core.batches import metrics_ipc
from tests.core.hostile import damaged_files, make_foreign, plant_hostile
from tests.support.machine import cpu_model

REPO = Path(__file__).resolve().parents[2]


def machine() -> str:
    model = cpu_model()
    return (f"{model} cpus={os.cpu_count()} python={platform.python_version()} {platform.platform()} "
            f"date={time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


def main() -> None:
    damaged = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(prefix="bench-spool-start-") as tmp:
        spool_dir = Path(tmp) / "state" / "spool"
        valid = Spool(spool_dir, Telemetry())
        valid.open()
        for i in range(20):
            valid.append("metrics", metrics_ipc(500, seed=i), 500)
        plant_hostile(spool_dir, make_foreign(Path(tmp) / "foreign"))
        damaged_files(spool_dir, damaged)
        done = subprocess.run([sys.executable, "-m", "tests.core.spool_opener", str(spool_dir), str(256 * 1024**2)],
                              cwd=REPO, capture_output=True, text=True, check=True)
        found = json.loads(done.stdout.splitlines()[-1])
    print(f"machine: {machine()}")
    print(f"spool start-up with {damaged} damaged files + every hostile entry + 20 valid batches: "
          f"open={found['open_s']:.2f}s vm_hwm={found['vm_hwm_kib'] / 1024:.1f} MiB "
          f"valid={len(found['batches'])} quarantined={found['quarantined']}")


if __name__ == "__main__":
    main()
