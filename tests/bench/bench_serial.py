"""Serial parsing throughput: frames per second on one core and CPU microseconds per frame.

Run: python -m tests.bench.bench_serial [N]   (pinned to one CPU; prints the machine it ran on)

Paths measured, each over N frames arriving in 4 KiB reads like a busy UART:
  slf1 parse   line splitter + SLF/1 decode + session tracking + series lookup (no ring)
  slf1 source  SerialSource.feed: the above plus counters and SourceContext.emit into a ring
  nmea source  GGA/RMC/GSA sentences through SerialSource.feed
  kv / jsonl   line formats through SerialSource.feed
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
from collections.abc import Callable

from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.model import SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.sources.serial import SerialConfig, SerialSource
from edgecollect.sources.serial.framing import START_BYTE, make_parser, slf1
from edgecollect.sources.serial.port import LineSplitter
from edgecollect.telemetry import Telemetry
from tests.support.machine import cpu_model

CHUNK = 4096


def ctx() -> SourceContext:
    t = Telemetry()
    ring = Ring("bench", 1_000_000, "drop_oldest", t.counter("buffer", "dropped", "policy"),
                t.counter("buffer", "logs_dropped", "policy"))
    return SourceContext("serial.bench", "serial", ring, threading.Event(), SeriesRegistry(), t, Clock())


def slf1_stream(n: int) -> bytes:
    return b"".join(
        slf1.encode("D", "esp32-a4cf12", i, i * 1000,
                    [("temp.ds0", f"{20 + i % 100 / 10:.2f}"), ("hum", f"{40 + i % 50 / 10:.1f}"), ("vbat", "3.71")])
        for i in range(n))


def nmea_stream(n: int) -> bytes:
    lines = [b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n",
             b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n",
             b"$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39\r\n"]
    return b"".join(lines[i % 3] for i in range(n))


def chunks(data: bytes) -> list[bytes]:
    return [data[i : i + CHUNK] for i in range(0, len(data), CHUNK)]


def measure(name: str, n: int, run: Callable[[], None]) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"{name:<14} {n:>8} frames  {n / wall:>10,.0f} frames/s  {cpu / n * 1e6:>7.2f} CPU us/frame")


def parse_only(cfg: SerialConfig, data: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        parser = make_parser(cfg)
        splitter = LineSplitter(cfg.line_limit(), START_BYTE.get(cfg.framing))
        now = time.time_ns()
        for chunk in data:
            for line in splitter.feed(chunk):
                parser.parse(line, now)
    return run


def through_source(cfg: SerialConfig, data: list[bytes]) -> Callable[[], None]:
    def run() -> None:
        c = ctx()
        source = SerialSource(cfg, c)
        splitter = LineSplitter(cfg.line_limit(), START_BYTE.get(cfg.framing))
        for i, chunk in enumerate(data):
            source.feed(splitter, chunk)
            if i % 64 == 0:
                c.ring.drain()  # the batcher's job; keeps the ring from wrapping
    return run



def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    print(f"machine: {platform.machine()}  processor: {cpu_model()}  "
          f"cpus: {os.cpu_count()}  python: {platform.python_implementation()} {platform.python_version()}"
          f"  pinned to one core: {hasattr(os, 'sched_setaffinity')}")
    s = chunks(b"\n" + slf1_stream(n))
    measure("slf1 parse", n, parse_only(SerialConfig(port="bench"), s))
    measure("slf1 source", n, through_source(SerialConfig(port="bench"), s))
    nm = chunks(b"\n" + nmea_stream(n))
    measure("nmea source", n, through_source(SerialConfig(port="bench", framing="nmea"), nm))
    kv = chunks(b"\n" + b"".join(b"temp=%d.5 hum=40.2 vbat=3.71\r\n" % (i % 40) for i in range(n)))
    measure("kv source", n, through_source(SerialConfig(port="bench", framing="kv"), kv))
    js = chunks(b"\n" + b"".join(b'{"temp": %d.5, "hum": 40.2, "id": "ds0"}\n' % (i % 40) for i in range(n)))
    measure("jsonl source", n, through_source(SerialConfig(port="bench", framing="jsonl"), js))


if __name__ == "__main__":
    main()
