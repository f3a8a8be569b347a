"""A process that opens a spool, as the agent does at start-up, and prints what it found as JSON.

Run by test_spool_hostile.py under an address-space limit and a timeout, so a spool that makes
start-up read a giant file or block on a FIFO fails the test instead of the machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return -1


def main() -> None:
    telemetry = Telemetry()
    spool = Spool(Path(sys.argv[1]), telemetry, max_size=int(sys.argv[2]))
    started = time.perf_counter()
    spool.open()
    elapsed = time.perf_counter() - started
    quarantined = telemetry.find("edgecollect.spool.quarantined")
    print(json.dumps({
        "batches": [b.id for b in spool.list()],
        "quarantined": quarantined.snapshot() if quarantined else {},
        "open_s": round(elapsed, 3),
        "vm_hwm_kib": vm_hwm_kib(),
    }))


if __name__ == "__main__":
    main()
