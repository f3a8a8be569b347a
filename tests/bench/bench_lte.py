"""LTE profile benchmark (issue 14): what the `[[processors]]` chain and its example config save.

    python -m tests.bench.bench_lte [--sensors 200] [--minutes 10]

200 MQTT sensors publish JSON every second for 10 minutes of simulated time: half climate sensors
(temperature, humidity random-walking slowly, plus rssi and uptime chatter), half power meters
(power, voltage, current, pressure). Climate readings drift slowly under sensor noise (σ 0.05 °C,
0.3 %RH, 0.05 hPa); power random-walks (σ 15 W per second). The same payloads go through the real MQTT source's parser
(`MqttSource.handle`, the code a broker message reaches) and `SourceContext.emit` into the ring,
once with configs/lte-gateway.toml and once with the same config minus its `[[processors]]`. The
ring is cut as the batcher does — whole `batch.max_points` batches as they fill, everything every
`batch.flush_interval` (the drain runs the chain's timers) — into metrics batches (zstd Arrow IPC,
as spooled) that our OTAP stream encoder encodes (as sent).

Printed: spool bytes (framed batch files) and wire bytes (OTAP BatchArrowRecords, and with gRPC
zstd), points, the ratio; CPU µs per input point for each processor (process time of its
`process` calls over the points it saw); and emit µs per point with and without processors — the
run without processors uses a plain `Ring`, the very code path of an agent without the feature.
No assertions: figures with the machine they ran on.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import zstandard

from edgecollect.batch import Rows, build_metrics, chunks, to_ipc
from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.config import Config, load
from edgecollect.exporters.otap_encode import OtapStreamEncoder
from edgecollect.model import Resource, SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.sources.mqtt import MqttSource
from edgecollect.spool import OVERHEAD
from edgecollect.telemetry import Telemetry
from tests.support.machine import cpu_model

REPO = Path(__file__).resolve().parents[2]
S = 1_000_000_000
T0 = 1_800_000_000 * S
_ZSTD = zstandard.ZstdCompressor(level=3)


def machine() -> str:
    cpu = cpu_model()
    return (
        f"{platform.machine()} {cpu} cpus={os.cpu_count()} python={platform.python_version()} "
        f"pyarrow={pa.__version__} {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


class SimClock(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0

    def now_ns(self) -> int:
        return self.now

    def stamp(self) -> tuple[int, int]:
        return self.now, 0


@dataclass
class Sensor:
    device: str
    climate: bool
    values: dict[str, float] = field(default_factory=dict)

    def payload(self, rng: random.Random, second: int) -> bytes:
        v = self.values
        if self.climate:
            # A slow drift (a few degrees over hours) under sensor noise, as a DHT22/SHT3x reads.
            drift = math.sin(second / 3600.0 + v.setdefault("phase", rng.uniform(0, 6.3)))
            temperature = round(21.0 + 2.0 * drift + rng.gauss(0, 0.05), 2)
            humidity = round(50.0 - 5.0 * drift + rng.gauss(0, 0.3), 1)
            doc: dict[str, float | int] = {
                "temperature": temperature,
                "humidity": humidity,
                "rssi": rng.randint(-80, -50),
                "uptime": second,
            }
        else:
            v["power"] = round(max(0.0, v.get("power", 500.0) + rng.gauss(0, 15.0)), 1)
            v["voltage"] = round(230.0 + rng.gauss(0, 1.5), 1)
            doc = {
                "power": v["power"],
                "voltage": v["voltage"],
                "current": round(v["power"] / v["voltage"], 3),
                "pressure": round(1013.0 + drift_hpa(second) + rng.gauss(0, 0.05), 2),
            }
        return json.dumps(doc).encode()


def drift_hpa(second: int) -> float:
    return 2.0 * math.sin(second / 7200.0)  # weather: a couple of hPa over hours


@dataclass
class Run:
    label: str
    points_in: int = 0
    points_out: int = 0
    spool_bytes: int = 0
    wire_bytes: int = 0
    wire_zstd: int = 0
    emit_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=dict)
    stage_points: dict[str, int] = field(default_factory=dict)


def run(cfg: Config, label: str, sensors: int, minutes: int) -> Run:
    registry, telemetry, clock = SeriesRegistry(), Telemetry(), SimClock()
    make_ring: type[Ring] | object = Ring
    if cfg.processors:
        from edgecollect.processors import ring_factory

        make_ring = ring_factory(cfg.processors, "mqtt.0", registry, telemetry, clock)
    ring = make_ring(  # type: ignore[operator]
        "mqtt.0",
        1_000_000,
        "drop_oldest",
        telemetry.counter("buffer", "dropped", "policy"),
        telemetry.counter("buffer", "logs_dropped", "policy"),
    )
    ctx = SourceContext("mqtt.0", "mqtt", ring, threading.Event(), registry, telemetry, clock)
    source = MqttSource(cfg.sources.mqtt[0], ctx)
    result = Run(label)
    chain = getattr(ring, "chain", None)
    if chain is not None:  # time each stage's process() (the chain's own loop, instrumented)
        for stage in chain.stages:
            original = stage.process

            def timed(rows: list, token: int, _orig=original, _name=stage.name) -> list:  # type: ignore[type-arg]
                t = time.process_time()
                out = _orig(rows, token)
                result.stage_s[_name] = result.stage_s.get(_name, 0.0) + time.process_time() - t
                result.stage_points[_name] = result.stage_points.get(_name, 0) + len(rows)
                return out

            stage.process = timed  # type: ignore[method-assign]
    rng = random.Random(7)
    fleet = [Sensor(f"s{i:03d}", i % 2 == 0) for i in range(sensors)]
    encoder = OtapStreamEncoder("metrics", ipc_compression="zstd")

    max_points, flush_s = cfg.batch.max_points, int(cfg.batch.flush_interval)

    def cut(full: bool) -> None:  # as the batcher: whole max_points batches early, everything on its tick
        whole = len(ring) // max_points * max_points
        drained = ring.drain() if full else ring.drain(whole) if whole else None
        if drained is None or not len(drained):
            return
        rows = Rows(drained.series_ids, drained.times_ns, drained.floats, drained.ints, drained.flags)
        for part in chunks(rows, max_points):
            batch = build_metrics(part, registry, Resource(), "boot")
            result.points_out += batch.num_rows
            result.spool_bytes += OVERHEAD + len(to_ipc(batch))
            bar = encoder.encode(batch).SerializeToString()
            result.wire_bytes += len(bar)
            result.wire_zstd += len(_ZSTD.compress(bar))

    for second in range(minutes * 60):
        clock.now = T0 + second * S
        for sensor in fleet:
            parsed = source.handle(f"sensors/{sensor.device}/state", sensor.payload(rng, second), received_ns=clock.now)
            t = time.process_time()
            result.points_in += len(parsed.points)
            ctx.emit(parsed.points)
            result.emit_s += time.process_time() - t
        cut(full=second % flush_s == flush_s - 1)
    if hasattr(ring, "close"):
        ring.close()  # shutdown: held deadband values, open windows
    cut(full=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    example = load(REPO / "configs" / "lte-gateway.toml")
    bare = dataclasses.replace(example, processors=())
    print(f"machine: {machine()}")
    print(f"{args.sensors} MQTT sensors at 1 s for {args.minutes} min of simulated time, JSON payloads\n")
    without = run(bare, "same, without processors", args.sensors, args.minutes)
    with_ = run(example, "configs/lte-gateway.toml", args.sensors, args.minutes)
    print(f"{'':28}{'points in':>11}{'points out':>12}{'spool bytes':>13}{'wire bytes':>12}{'wire+zstd':>11}")
    for r in (without, with_):
        print(f"{r.label:28}{r.points_in:>11}{r.points_out:>12}{r.spool_bytes:>13}{r.wire_bytes:>12}{r.wire_zstd:>11}")
    keys = ("spool_bytes", "wire_bytes", "wire_zstd", "points_out")
    ratio = {k: getattr(without, k) / getattr(with_, k) for k in keys}
    print(f"\nsaving: spool {ratio['spool_bytes']:.1f}x, wire {ratio['wire_bytes']:.1f}x "
          f"(with gRPC zstd {ratio['wire_zstd']:.1f}x), points {ratio['points_out']:.1f}x")
    print("\nCPU per input point, per processor (process time of its process() calls):")
    for name, seconds in with_.stage_s.items():
        n = with_.stage_points[name]
        print(f"  {name:24} {seconds * 1e6 / max(1, n):6.2f} us/point over {n} points")
    print("\nSourceContext.emit (intern + chain + ring), per input point:")
    print(f"  without processors (plain Ring)   {without.emit_s * 1e6 / without.points_in:6.2f} us/point")
    print(f"  with the example's processors     {with_.emit_s * 1e6 / with_.points_in:6.2f} us/point")


if __name__ == "__main__":
    main()
