"""Core pipeline benchmark: host-like samples → ring → batcher → spool, at a fixed rate.

    python -m tests.bench.bench_core [--rate 20000] [--seconds 120] [--series 200]

Prints the machine, RSS at start and end (and every 10 s, to show it stays flat), CPU microseconds
per sample for the whole process (producer + batcher + spool), and spool bytes per sample.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import tempfile
import threading
import time
from pathlib import Path

import psutil

from edgecollect.batcher import Batcher
from edgecollect.buffer import Ring
from edgecollect.config import BatchConfig
from edgecollect.model import Resource, Series, SeriesRegistry, attrs
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry


def machine() -> str:
    return (
        f"{platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python={platform.python_version()} {platform.platform()}"
    )


def host_like_series(registry: SeriesRegistry, count: int) -> list[tuple[int, str]]:
    """(series id, shape): gauges in [0,1] with 3 decimals, byte gauges, monotonic counters."""
    out = []
    for i in range(count):
        shape = ("utilization", "bytes", "counter")[i % 3]
        kind = "cumulative" if shape == "counter" else "gauge"
        s = Series(
            f"system.bench.{shape}", "1" if shape == "utilization" else "By", kind, attrs({"device": f"dev{i // 3}"})
        )
        out.append((registry.intern(s, 1), shape))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=20_000, help="samples per second")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--ring", type=int, default=100_000)
    parser.add_argument("--max-points", type=int, default=BatchConfig().max_points, help="batch.max_points")
    args = parser.parse_args()

    baseline_rss = psutil.Process().memory_info().rss
    telemetry = Telemetry()
    registry = SeriesRegistry()
    series = host_like_series(registry, args.series)
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp), telemetry, max_size=1 << 34)
        spool.open()
        ring = Ring(
            "bench",
            args.ring,
            "drop_oldest",
            telemetry.counter("buffer", "dropped", "policy"),
            telemetry.counter("buffer", "logs_dropped", "policy"),
        )
        batcher = Batcher(
            [ring],
            registry,
            Resource(attrs({"host.name": "bench"})),
            "boot",
            spool.append,
            telemetry,
            flush_interval_s=10.0,
            max_points=args.max_points,
        )
        stop = threading.Event()
        threading.Thread(target=batcher.run, args=(stop,), daemon=True).start()
        proc = psutil.Process()
        rnd = random.Random(1)
        values = {sid: float(rnd.randint(100_000_000, 4_000_000_000)) for sid, _ in series}
        tick_s = 0.1
        per_tick = int(args.rate * tick_s)
        start = time.monotonic()
        rss_start = proc.memory_info().rss
        cpu_start = resource.getrusage(resource.RUSAGE_SELF)
        sent = 0
        next_report = start + 10
        print(f"machine: {machine()}")
        print(f"rate={args.rate}/s seconds={args.seconds} series={args.series} ring={args.ring} "
          f"max_points={args.max_points}")
        print(f"t=0s rss={rss_start / 1e6:.1f} MB")
        i = 0
        while time.monotonic() - start < args.seconds:
            now_ns = time.time_ns()
            rows = []
            for _ in range(per_tick):
                sid, shape = series[i % len(series)]
                i += 1
                if shape == "utilization":
                    rows.append((sid, now_ns, round(rnd.random() * 0.2, 3), 0))
                elif shape == "bytes":  # memory/filesystem usage: moves by whole pages, now and then
                    values[sid] += rnd.choice((0, 0, 0, 4096, -4096))
                    rows.append((sid, now_ns, int(values[sid]), 0))
                else:
                    values[sid] += rnd.randint(0, 1500)
                    rows.append((sid, now_ns, int(values[sid]), 0))
            ring.extend(rows)
            sent += len(rows)
            sleep = start + (sent / args.rate) - time.monotonic()
            if sleep > 0:
                time.sleep(sleep)
            if time.monotonic() >= next_report:
                print(
                    f"t={time.monotonic() - start:.0f}s rss={proc.memory_info().rss / 1e6:.1f} MB "
                    f"spool={spool.stats().bytes / 1e6:.1f} MB"
                )
                next_report += 10
        stop.set()
        batcher.wake()
        batcher.flush()
        cpu_end = resource.getrusage(resource.RUSAGE_SELF)
        rss_end = proc.memory_info().rss
        written = telemetry.find("edgecollect.spool.bytes_written")
        spool_bytes = written.total() if written else 0
        dropped = telemetry.find("edgecollect.buffer.dropped")
        cpu_s = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
        elapsed = time.monotonic() - start
        print(
            f"samples={sent} elapsed={elapsed:.1f}s achieved={sent / elapsed:.0f}/s "
            f"dropped={dropped.total() if dropped else 0}"
        )
        uss_end = proc.memory_full_info().uss
        print(
            f"rss_start={rss_start / 1e6:.1f} MB rss_end={rss_end / 1e6:.1f} MB uss_end={uss_end / 1e6:.1f} MB "
            f"(baseline: python + pyarrow imported = {baseline_rss / 1e6:.1f} MB)"
        )
        print(f"cpu_us_per_sample={cpu_s * 1e6 / sent:.2f}")
        print(f"spool_bytes_per_sample={spool_bytes / sent:.2f} (batches={spool.stats().files})")


if __name__ == "__main__":
    main()
