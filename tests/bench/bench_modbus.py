"""Modbus source throughput against a real pymodbus TCP server: readings per second and CPU per
register on the agent side.

Run: python -m tests.bench.bench_modbus [SECONDS]   (prints the machine it ran on)

The server (pymodbus's own, asyncio) runs in a separate process on a free loopback port, so its
CPU is not counted; the agent side is pinned to one CPU and polls as fast as the server answers,
through ModbusSource.poll (request planning, pymodbus request/response, decoding, the ring). CPU
is this process's user+system time (time.process_time), so it includes pymodbus's framing, which
is the cost a gateway pays per register. Maps measured:

  dense float32    40 float32 values in 80 adjacent input registers: one request per poll
  gappy uint16     40 uint16 values 20 registers apart: 40 requests (max_gap 8 cannot bridge)
  bits + scaled    a status word as 16 bits, 16 scaled int16 after it, 16 coils: two requests
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.model import SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.sources.modbus.config import DeviceConfig, ModbusConfig, RegisterConfig
from edgecollect.telemetry import Telemetry
from tests.support.machine import cpu_model

R = RegisterConfig
MAPS: dict[str, tuple[RegisterConfig, ...]] = {
    "dense float32": tuple(R(f"f{i}", 2 * i, kind="input", type="float32", unit="W") for i in range(40)),
    "gappy uint16": tuple(R(f"u{i}", 20 * i) for i in range(40)),
    "bits + scaled": (
        *(R(f"bit{i}", 1000, bit=i) for i in range(16)),
        *(R(f"s{i}", 1001 + i, type="int16", scale=0.1, unit="Cel") for i in range(16)),
        *(R(f"c{i}", i, kind="coil") for i in range(16)),
    ),
}


def serve(port: int) -> None:
    """The server process: every address 0..1999 readable in all four tables."""
    from tests.sources.modbus.modbus_server import Server, bits, registers

    server = Server()
    words = [(i * 7919) & 0xFFFF for i in range(2000)]
    device = server.device(1, hr=[registers(0, words)], ir=[registers(0, words)],
                           co=[bits(0, [i % 3 == 0 for i in range(2000)])])
    server.serve_tcp([device], port)
    print("ready", flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    server.close()



def context() -> SourceContext:
    t = Telemetry()
    ring = Ring("bench", 1_000_000, "drop_oldest", t.counter("buffer", "dropped", "policy"),
                t.counter("buffer", "logs_dropped", "policy"))
    return SourceContext("modbus.bench", "modbus", ring, threading.Event(), SeriesRegistry(), t, Clock())


def measure(name: str, regs: tuple[RegisterConfig, ...], port: int, seconds: float) -> None:
    from edgecollect.sources.modbus.source import ModbusSource

    ctx = context()
    cfg = ModbusConfig(name="bench", endpoint=f"127.0.0.1:{port}", timeout=2.0, devices=(DeviceConfig(1, regs),))
    source = ModbusSource(cfg, ctx)
    dev = source.devices[0]
    source.poll(dev)  # connect outside the measured window
    registers_per_poll = sum(r.count for r in dev.reads)
    polls = readings = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < seconds:
        readings += source.poll(dev)
        polls += 1
        if polls % 32 == 0:
            ctx.ring.drain()  # the batcher's job
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    requests = polls * len(dev.reads)
    errors = sum(v for k, v in dev.requests.snapshot().items() if k != "ok")
    print(f"{name:14s} {len(regs):3d} values {len(dev.reads):3d} req/poll | {readings / wall:9.0f} readings/s "
          f"{requests / wall:7.0f} requests/s | CPU {cpu / wall * 100:5.1f}% "
          f"{cpu / readings * 1e6:6.1f} us/reading {cpu / (polls * registers_per_poll) * 1e6:6.2f} us/register "
          f"{cpu / requests * 1e6:7.1f} us/request | errors {errors}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
        return
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    from tests.support.ports import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_modbus", "--serve", str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        if hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            os.sched_setaffinity(0, {cpus[0]})
            os.sched_setaffinity(server.pid, {cpus[-1]})
        import pymodbus

        print(f"machine: {platform.machine()}  processor: {cpu_model()}  cpus: {os.cpu_count()}  "
              f"python: {platform.python_implementation()} {platform.python_version()}  "
              f"pymodbus: {pymodbus.__version__}  date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
        print(f"agent pinned to one CPU, pymodbus TCP server in its own process on another; {seconds:.0f} s per map")
        for name, regs in MAPS.items():
            measure(name, regs, port, seconds)
    finally:
        if server.stdin:
            server.stdin.close()
        server.wait(10)


if __name__ == "__main__":
    main()
