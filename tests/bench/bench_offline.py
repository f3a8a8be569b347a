"""24 h offline at defaults, quickly: 8,640 host cuts (the 97-series Pi-like host profile of
bench_wire, one cut every 10 s of simulated time) appended to a real spool as the batcher does, with
compaction after each append as the offline agent runs it; no waiting.

    python -m tests.bench.bench_offline [--hours 24]

Prints spool bytes per point, files left, and the bytes written to the spool directory (cuts and
merges: the write amplification compaction costs), with and without compaction.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

from edgecollect.batch import to_ipc
from edgecollect.compaction import Compactor
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.bench.bench_bytes import machine
from tests.bench.bench_wire import host_dataset


def offline(hours: float = 24.0) -> None:
    rng = random.Random(3)
    ds = host_dataset(rng)
    payloads = [(to_ipc(b), b.num_rows) for b in ds.batches(int(hours * 3600), 10, rng)]
    points = sum(n for _, n in payloads)
    print(f"\n### {hours:g} h offline at defaults: {len(payloads)} host cuts, {points} points\n")
    print("| spool | files | bytes | B/point | bytes written (cuts + merges) | µs CPU per cut |")
    print("|---|---:|---:|---:|---:|---:|")
    for compact in (False, True):
        work = Path(tempfile.mkdtemp(prefix="bench-offline-"))
        try:
            telemetry = Telemetry()
            spool = Spool(work / "spool", telemetry)
            spool.open()
            compactor = Compactor(spool, telemetry)
            started = time.process_time()
            for payload, n in payloads:
                spool.append("metrics", payload, n)
                if compact:
                    compactor.run()
            cpu = (time.process_time() - started) * 1e6 / len(payloads)
            st = spool.stats()
            assert st.points == points, "compaction lost points"
            written = telemetry.find("edgecollect.spool.bytes_written")
            cut_bytes = written.total() if written is not None else 0
            merge_bytes = compactor_written(telemetry) if compact else 0
            label = "compaction (defaults)" if compact else "no compaction (before)"
            print(f"| {label} | {st.files} | {st.bytes:,} | {st.bytes / points:.2f} | "
                  f"{cut_bytes + merge_bytes:,} | {cpu:.0f} |")
        finally:
            shutil.rmtree(work, ignore_errors=True)


def compactor_written(telemetry: Telemetry) -> int:
    found = telemetry.find("edgecollect.spool.merge_bytes")
    return found.total() if found is not None else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hours", type=float, default=24.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    offline(args.hours)


if __name__ == "__main__":
    main()
