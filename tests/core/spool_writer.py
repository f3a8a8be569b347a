"""A process that writes spool batches as fast as it can and prints each id once it is durable.

Run by test_spool_crash.py and killed with SIGKILL at random moments.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.core.batches import metrics_ipc


def main() -> None:
    spool = Spool(Path(sys.argv[1]), Telemetry(), max_size=1 << 40)
    spool.open()
    i = 0
    while True:
        i += 1
        payload = metrics_ipc(points=200 + (i % 50) * 20, seed=i)
        batch_id = spool.append("metrics", payload, 1)
        sys.stdout.write(f"{batch_id}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
