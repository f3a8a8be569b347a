"""Wire benchmark: bytes per point on the wire for our OTAP encoder, OTLP/gRPC and the Go reference
producer, on the same data; plus our encoder's CPU microseconds per point (issue 3, Deliver item 7).

    python -m tests.bench.bench_wire [--minutes 10] [--sensors 200] [--intervals 10,60] [--no-go]
                                     [--profiles everyday,replay,datasets] [--replay-hours 24]

Profiles "everyday" and "replay" (issue 12): host metrics cut every 10 s on our default wire, with
one stream per batch, a stream recycled every 30 s, one 1-h stream, and send cadences of 30-300 s
(batches coalesced as the forwarder does); and a 24-h backlog replayed in 5,000-point wire batches.

Data (synthetic, shaped like the real thing):
* host: a Raspberry-Pi-like host scraped every 10 s — 97 series: cpu time and utilization per core and
  state, cpu frequency, memory by state, filesystem by mountpoint and state, network io/packets/errors/
  dropped by interface and direction, disk io/operations, temperatures, load averages, processes, uptime;
* mqtt: 200 sensors at 1 s (Tasmota plugs: power, voltage, current, energy total; Zigbee climate:
  temperature, humidity, pressure, battery, link quality), stamped on receipt (millisecond jitter).

Spooled batches of `--intervals` seconds go through, each as ONE stream:
* ours: OtapStreamEncoder (IPC zstd, and IPC none), BAR bytes raw and with gRPC message compression
  (gzip is what grpcio can send; zstd shown for comparison with the Go exporter's default);
* OTLP: ExportMetricsServiceRequest from edgecollect.exporters.otlp_map.metrics_request, raw/gzip/zstd;
* Go: the reference `arrow_record.Producer` (tests/interop sink `produce`, IPC zstd, its default), raw
  and with gRPC zstd (the Go exporter's default) or gzip.
gRPC compression is applied per message (gzip level 6 as grpcio; zstd level 3 as the collector's
default). gRPC/HTTP/2 framing (a few bytes per message) is the same for all and left out.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import math
import os
import platform
import random
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pyarrow as pa
import zstandard
from google.protobuf import json_format

from edgecollect.batch import Rows, build_metrics
from edgecollect.buffer import FLAG_INT
from edgecollect.exporters.otap_encode import OtapStreamEncoder
from edgecollect.exporters.otlp_map import metrics_request
from edgecollect.model import Kind, Resource, Series, SeriesRegistry, attrs

T0 = 1_764_000_000_000_000_000
S = 1_000_000_000
_ZSTD = zstandard.ZstdCompressor(level=3)


def machine() -> str:
    return (f"{platform.machine()} {platform.processor() or '-'} cpus={os.cpu_count()} "
            f"python={platform.python_version()} pyarrow={pa.__version__} {platform.platform()}")


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=6, mtime=0))


def zs(data: bytes) -> int:
    return len(_ZSTD.compress(data))


# -- data ------------------------------------------------------------------------------------------


@dataclass
class Sample:
    series: Series
    start_ns: int
    step: Callable[[float], float | int]  # previous value → next value
    value: float | int


@dataclass
class Dataset:
    name: str
    period_s: int
    registry: SeriesRegistry = field(default_factory=SeriesRegistry)
    samples: list[Sample] = field(default_factory=list)
    resource: Resource = field(default_factory=Resource)
    jitter_ms: int = 0

    def add(self, name: str, unit: str, kind: Kind, a: dict[str, str], value: float | int,
            step: Callable[[float], float | int]) -> None:
        start = T0 - 86_400 * S if kind in ("cumulative", "delta") else 0
        self.samples.append(Sample(Series(name, unit, kind, attrs(a)), start, step, value))

    def batches(self, seconds: int, interval_s: int, rng: random.Random) -> Iterator[pa.RecordBatch]:
        ids = [self.registry.intern(s.series, s.start_ns) for s in self.samples]
        ticks_per_batch = max(1, interval_s // self.period_s)
        total = seconds // self.period_s
        for first in range(0, total, ticks_per_batch):
            sids: list[int] = []
            times: list[int] = []
            floats: list[float] = []
            ints: list[int] = []
            flags: list[int] = []
            for tick in range(first, min(first + ticks_per_batch, total)):
                t = T0 + tick * self.period_s * S
                for sid, s in zip(ids, self.samples, strict=True):
                    s.value = s.step(s.value)
                    sids.append(sid)
                    times.append(t + (rng.randint(0, self.jitter_ms) * 1_000_000 if self.jitter_ms else 0))
                    if isinstance(s.value, int):
                        ints.append(s.value)
                        floats.append(0.0)
                        flags.append(FLAG_INT)
                    else:
                        ints.append(0)
                        floats.append(s.value)
                        flags.append(0)
            yield build_metrics(Rows(sids, times, floats, ints, flags), self.registry, self.resource, "bench")


def walk(rng: random.Random, sigma: float, lo: float, hi: float, digits: int) -> Callable[[float], float]:
    return lambda v: round(min(hi, max(lo, v + rng.gauss(0, sigma))), digits)


def seconds_counter(rng: random.Random, share: float) -> Callable[[float], float]:
    """CPU seconds spent in one state over a 10 s scrape, as psutil reports them (centiseconds)."""
    return lambda v: round(v + 10 * share * rng.uniform(0.8, 1.2), 2)


def counter(rng: random.Random, mean: float) -> Callable[[float], int]:
    return lambda v: int(v) + max(0, int(rng.expovariate(1 / mean))) if mean > 0 else int(v)


def host_dataset(rng: random.Random) -> Dataset:
    d = Dataset("host (Pi-like, 10 s)", 10, resource=Resource(attrs({
        "host.name": "gw-barn-01", "host.arch": "arm64", "os.type": "linux", "service.name": "edgecollect",
        "service.version": "0.1.0", "device.id": "b8:27:eb:12:34:56"})))
    states = ("user", "system", "idle", "iowait")
    for cpu in range(4):
        busy = rng.uniform(0.02, 0.3)
        for st in states:
            frac = (1 - busy) if st == "idle" else busy / 3
            d.add("system.cpu.time", "s", "cumulative", {"cpu": f"cpu{cpu}", "state": st},
                  round(rng.uniform(1e3, 1e5), 2), seconds_counter(rng, frac))
            d.add("system.cpu.utilization", "1", "gauge", {"cpu": f"cpu{cpu}", "state": st},
                  round(frac, 3), walk(rng, 0.01, 0.0, 1.0, 3))
        d.add("system.cpu.frequency", "Hz", "gauge", {"cpu": f"cpu{cpu}"}, 1_500_000_000,
              lambda v: rng.choice((600_000_000, 1_500_000_000, 1_800_000_000)))
    total = 4 * 1024**3
    for st, share in (("used", 0.35), ("free", 0.4), ("buffered", 0.05), ("cached", 0.2)):
        d.add("system.memory.usage", "By", "updown", {"state": st}, int(total * share),
              lambda v: int(v) + rng.randint(-200, 200) * 4096)
        d.add("system.memory.utilization", "1", "gauge", {"state": st}, share, walk(rng, 0.002, 0, 1, 4))
    for dev, mnt, fs, size in (("/dev/mmcblk0p2", "/", "ext4", 29e9), ("/dev/mmcblk0p1", "/boot/firmware", "vfat",
                               5.3e8), ("/dev/sda1", "/var/lib/edgecollect", "ext4", 1.2e11)):
        base = {"device": dev, "mountpoint": mnt, "type": fs}
        for st, share in (("used", 0.4), ("free", 0.55), ("reserved", 0.05)):
            d.add("system.filesystem.usage", "By", "updown", {**base, "state": st}, int(size * share),
                  lambda v: int(v) + rng.randint(-3, 8) * 4096)
        d.add("system.filesystem.utilization", "1", "gauge", base, 0.4, walk(rng, 0.00001, 0, 1, 5))
    for dev, rate in (("eth0", 20_000), ("wlan0", 3_000), ("lo", 500)):
        for direction in ("transmit", "receive"):
            a = {"device": dev, "direction": direction}
            d.add("system.network.io", "By", "cumulative", a, rng.randint(10**6, 10**10), counter(rng, rate * 10))
            d.add("system.network.packets", "{packet}", "cumulative", a, rng.randint(10**4, 10**7),
                  counter(rng, rate / 50))
            d.add("system.network.errors", "{error}", "cumulative", a, rng.randint(0, 20), counter(rng, 0.01))
            d.add("system.network.dropped", "{packet}", "cumulative", a, rng.randint(0, 200), counter(rng, 0.1))
    for dev in ("mmcblk0", "sda"):
        for direction in ("read", "write"):
            a = {"device": dev, "direction": direction}
            d.add("system.disk.io", "By", "cumulative", a, rng.randint(10**8, 10**11), counter(rng, 40_000))
            d.add("system.disk.operations", "{operation}", "cumulative", a, rng.randint(10**5, 10**8), counter(rng, 8))
    for sensor, t in (("cpu-thermal", 52.0), ("gpu-thermal", 50.5)):
        d.add("hw.temperature", "Cel", "gauge", {"sensor": sensor}, t, walk(rng, 0.3, 30, 85, 1))
    for window in ("1m", "5m", "15m"):
        d.add(f"system.cpu.load_average.{window}", "{thread}", "gauge", {}, 0.5, walk(rng, 0.05, 0, 4, 2))
    for status, n in (("running", 2), ("sleeping", 180), ("blocked", 0)):
        d.add("system.processes.count", "{process}", "updown", {"status": status}, n,
              lambda v: max(0, int(v) + rng.randint(-2, 2)))
    d.add("system.uptime", "s", "gauge", {}, 86_400.0, lambda v: round(v + 10.0, 1))
    return d


def mqtt_dataset(rng: random.Random, sensors: int) -> Dataset:
    d = Dataset(f"mqtt ({sensors} sensors, 1 s)", 1, jitter_ms=40, resource=Resource(attrs({
        "host.name": "gw-barn-01", "service.name": "edgecollect", "service.version": "0.1.0"})))
    plug = (("power", "W", "gauge", 40, lambda r: lambda v: max(0, int(v) + r.randint(-3, 3))),
            ("voltage", "V", "gauge", 231, lambda r: lambda v: int(v) + r.randint(-1, 1)),
            ("current", "A", "gauge", 0.174, lambda r: walk(r, 0.004, 0, 16, 3)),
            ("energy.total", "kWh", "cumulative", 123.456, lambda r: lambda v: round(v + r.choice((0, 0.001)), 3)))
    climate = (("temperature", "Cel", "gauge", 21.5, lambda r: walk(r, 0.02, -20, 50, 2)),
               ("humidity", "%", "gauge", 45.0, lambda r: walk(r, 0.05, 0, 100, 2)),
               ("pressure", "hPa", "gauge", 1013.2, lambda r: walk(r, 0.05, 900, 1100, 1)),
               ("battery", "%", "gauge", 87, lambda r: lambda v: int(v) - (1 if r.random() < 0.0005 else 0)),
               ("linkquality", "1", "gauge", 120, lambda r: lambda v: max(0, min(255, int(v) + r.randint(-4, 4)))))
    rooms = ("barn", "kitchen", "cellar", "office", "greenhouse", "garage")
    added, dev = 0, 0
    while added < sensors:
        kind, fields = (("plug", plug) if dev % 2 else ("climate", climate))
        name = f"{kind}-{dev:03d}"
        for field_name, unit, mkind, start, mk in fields:
            if added == sensors:
                break
            a = {"device": name, "topic": f"tele/{name}/SENSOR", "room": rooms[dev % len(rooms)],
                 "source": "mqtt", "format": "tasmota" if kind == "plug" else "zigbee2mqtt"}
            d.add(f"sensor.{field_name}", unit, mkind, a, start, mk(rng))  # type: ignore[arg-type]
            added += 1
        dev += 1
    return d


# -- measurement -----------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    bytes: int
    points: int

    @property
    def per_point(self) -> float:
        return self.bytes / self.points


def ours(batches: list[pa.RecordBatch], points: int) -> tuple[list[Result], float]:
    out = []
    cpu = math.inf
    modes: tuple[Literal["zstd", "none"], ...] = ("zstd", "none")
    for compression in modes:
        for _ in range(3):  # best of three fresh streams: the figure is the encoder, not a noisy neighbour
            enc = OtapStreamEncoder("metrics", ipc_compression=compression)
            t = time.process_time()
            bars = [enc.encode(b).SerializeToString() for b in batches]
            if compression == "zstd":
                cpu = min(cpu, time.process_time() - t)
        tag = f"ours OTAP, IPC {compression}"
        out += [Result(f"{tag}", sum(map(len, bars)), points),
                Result(f"{tag} + gRPC gzip", sum(map(gz, bars)), points),
                Result(f"{tag} + gRPC zstd", sum(map(zs, bars)), points)]
    return out, cpu * 1e6 / points


def otlp(batches: list[pa.RecordBatch], points: int) -> tuple[list[Result], list[str], float]:
    t = time.process_time()
    reqs = [metrics_request(b) for b in batches]
    raw = [r.SerializeToString() for r in reqs]
    cpu = (time.process_time() - t) * 1e6 / points
    lines = [json.dumps(json_format.MessageToDict(r, use_integers_for_enums=True), separators=(",", ":"))
             for r in reqs]
    return [Result("OTLP protobuf", sum(map(len, raw)), points),
            Result("OTLP + gRPC gzip", sum(map(gz, raw)), points),
            Result("OTLP + gRPC zstd", sum(map(zs, raw)), points)], lines, cpu


def go_producer(lines: list[str], points: int) -> list[Result]:
    from tests.support.sink import build_sink

    binary = build_sink()
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(lines) + "\n")
        path = f.name
    try:
        proc = subprocess.run([str(binary), "produce", "-with-bar", path], capture_output=True, text=True,
                              check=True, timeout=600)
    finally:
        Path(path).unlink()
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert sum(o["points"] for o in out) == points, "Go producer saw a different number of points"
    bars = [base64.b64decode(o["bar"]) for o in out]
    return [Result("Go producer (IPC zstd)", sum(map(len, bars)), points),
            Result("Go producer + gRPC gzip", sum(map(gz, bars)), points),
            Result("Go producer + gRPC zstd (Go exporter default)", sum(map(zs, bars)), points)]


def report(title: str, results: list[Result], cpu_ours: float, cpu_otlp: float) -> None:
    ref = next(r for r in results if r.label == "OTLP + gRPC zstd").per_point
    go = next((r for r in results if r.label.startswith("Go producer + gRPC zstd")), None)
    print(f"\n### {title}: {results[0].points} points\n")
    print("| encoding | bytes | B/point | × OTLP+zstd | × Go+zstd |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        vs_go = f"{r.per_point / go.per_point:.2f}" if go else "n/a"
        print(f"| {r.label} | {r.bytes:,} | {r.per_point:.2f} | {r.per_point / ref:.3f} | {vs_go} |")
    print(f"\nCPU (process time, best of 3): our OTAP encoder {cpu_ours:.2f} µs/point; "
          f"OTLP request build + serialize {cpu_otlp:.2f} µs/point")


def _otap_gzip(batches: list[pa.RecordBatch], per_stream: int | None) -> int:
    """Bytes of our default wire (IPC zstd + gRPC gzip), a new stream every `per_stream` batches."""
    total = 0
    enc = OtapStreamEncoder("metrics")
    for i, b in enumerate(batches):
        if per_stream is not None and i % per_stream == 0:
            enc = OtapStreamEncoder("metrics")
        total += gz(enc.encode(b).SerializeToString())
    return total


def _otlp_zstd(batches: list[pa.RecordBatch]) -> int:
    return sum(zs(metrics_request(b).SerializeToString()) for b in batches)


def _cadence(batches: list[pa.RecordBatch], k: int, max_points: int = 5000) -> list[pa.RecordBatch]:
    """What the forwarder sends when k cut batches leave together (coalesce.py), up to max_points."""
    from edgecollect.coalesce import coalesce, groups

    out = []
    for lo in range(0, len(batches), k):
        part = batches[lo : lo + k]
        out += [coalesce([part[i] for i in g]) for g in groups(part, max_points)]
    return out


def everyday(minutes: float) -> None:
    """Host metrics every 10 s, cut every 10 s (the defaults): how stream lifetime and send cadence
    change the bytes per point on our default wire, next to OTLP+zstd of the same wire batches."""
    rng = random.Random(42)
    ds = host_dataset(rng)
    batches = list(ds.batches(int(minutes * 60), 10, rng))
    points = sum(b.num_rows for b in batches)
    print(f"\n### everyday: host every 10 s, {minutes:g} min, {points} points, OTAP = IPC zstd + gRPC gzip\n")
    print("| profile | wire batches | B/point | OTLP+zstd B/point (same batches) |")
    print("|---|---:|---:|---:|")
    otlp10 = _otlp_zstd(batches) / points
    for label, per_stream in (("10-s batches, one stream per batch", 1),
                              ("10-s batches, stream recycled every 30 s (old default)", 3),
                              ("10-s batches, one 1-h stream (new lifetime)", 360)):
        print(f"| {label} | {len(batches)} | {_otap_gzip(batches, per_stream) / points:.2f} | {otlp10:.2f} |")
    for seconds in (30, 60, 120, 300):
        sent = _cadence(batches, seconds // 10)
        print(f"| send cadence {seconds} s, one 1-h stream | {len(sent)} | "
              f"{_otap_gzip(sent, 3600 // seconds) / points:.2f} | {_otlp_zstd(sent) / points:.2f} |")


def replay(hours: float, max_points: int) -> None:
    """A backlog of 10-s host batches (24 h offline) replayed coalesced into max_points wire batches."""
    rng = random.Random(7)
    ds = host_dataset(rng)
    batches = list(ds.batches(int(hours * 3600), 10, rng))
    points = sum(b.num_rows for b in batches)
    sent = _cadence(batches, len(batches), max_points)
    ours_b = _otap_gzip(sent, None)
    otlp_small, otlp_big = _otlp_zstd(batches), _otlp_zstd(sent)
    print(f"\n### replay: {hours:g} h of host batches ({len(batches)} spooled, {points} points) "
          f"coalesced into {len(sent)} wire batches of <= {max_points} points\n")
    print("| encoding | B/point | × OTLP+zstd (same wire batches) | × OTLP+zstd (as spooled, 10 s) |")
    print("|---|---:|---:|---:|")
    print(f"| ours OTAP, IPC zstd + gRPC gzip, one stream | {ours_b / points:.2f} | {ours_b / otlp_big:.3f} | "
          f"{ours_b / otlp_small:.3f} |")
    print(f"| OTLP + gRPC zstd, {max_points}-point batches | {otlp_big / points:.2f} | 1.000 | "
          f"{otlp_big / otlp_small:.3f} |")
    print(f"| OTLP + gRPC zstd, 10-s batches | {otlp_small / points:.2f} | {otlp_small / otlp_big:.3f} | 1.000 |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--intervals", default="10,60", help="batch lengths in seconds, comma-separated")
    parser.add_argument("--no-go", action="store_true", help="skip the Go reference producer")
    parser.add_argument("--profiles", default="everyday,replay,datasets",
                        help="everyday (stream lifetime, send cadence), replay (24 h backlog), datasets")
    parser.add_argument("--replay-hours", type=float, default=24.0)
    args = parser.parse_args()
    print(f"machine: {machine()}  date: {time.strftime('%Y-%m-%d %H:%M:%S')}")
    profiles = args.profiles.split(",")
    if "everyday" in profiles:
        everyday(max(args.minutes, 60.0))
    if "replay" in profiles:
        replay(args.replay_hours, 5000)
    if "datasets" not in profiles:
        return
    seconds = int(args.minutes * 60)
    for make in (host_dataset, lambda r: mqtt_dataset(r, args.sensors)):
        for interval in (int(x) for x in args.intervals.split(",")):
            rng = random.Random(42)
            ds = make(rng)
            batches = list(ds.batches(seconds, interval, rng))
            points = sum(b.num_rows for b in batches)
            results, cpu = ours(batches, points)
            otlp_results, lines, cpu_otlp = otlp(batches, points)
            results = otlp_results + ([] if args.no_go else go_producer(lines, points)) + results
            report(f"{ds.name}, {len(batches)} batches of {interval} s", results, cpu, cpu_otlp)


if __name__ == "__main__":
    main()
