"""The agent's published figures (issue 7): footprint at 1k/10k/50k points/s with every source on,
microseconds per point per stage, wire and spool bytes per point, drain rate of a large backlog to
the Go reference sink, and collectd side by side on the same host metrics.

    python -m tests.bench.bench_suite [--seconds 20] [--only footprint,stages,wire,drain,collectd] [--json OUT]

Prints each figure with the machine; `tests/bench/report.py` runs it and writes docs/benchmarks/.
Every peer is real: the agent is `python -m edgecollect run -c ...` in its own process, MQTT comes
from a publisher process through mosquitto (QoS 1), serial from a pty writer, host metrics from
psutil; resource use is read from outside with psutil. Nothing here asserts: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tests.support.agent import AgentProcess
from tests.support.machine import cpu_model
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
VALUES_PER_MESSAGE = 10  # an MQTT JSON payload and an SLF/1 frame each carry ten readings
RATES = (1_000, 10_000, 50_000)
MQTT_WINDOW = 1000  # mosquitto max_inflight_messages for the footprint runs


def machine() -> dict[str, Any]:
    cpu = cpu_model()
    return {"machine": platform.machine(), "processor": platform.processor() or cpu, "cpu_model": cpu,
            "cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30, 1)}


# -- a process measured from outside -----------------------------------------------------------


class Meter:
    """RSS (and USS at the end) and CPU of one process over a window, sampled every `every_s`."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.rss: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._cpu0 = self._cpu()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.rss.append((time.monotonic() - self._t0, self.proc.memory_info().rss))
            except psutil.Error:
                return

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(5)
        wall = time.monotonic() - self._t0
        cpu = self._cpu() - self._cpu0
        rss = [r for _, r in self.rss] or [self.proc.memory_info().rss]
        return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 3), "cpu_pct_of_one_core": round(100 * cpu / wall, 2),
                "rss_mean_mib": round(sum(rss) / len(rss) / 2**20, 1), "rss_max_mib": round(max(rss) / 2**20, 1),
                "uss_mib": round(self.proc.memory_full_info().uss / 2**20, 1),
                "rss_series": [(round(t, 2), round(r / 2**20, 2)) for t, r in self.rss]}


def status(state: Path) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(str(state / "status.sock"))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    doc: dict[str, Any] = json.loads(data)
    return doc


def wait_status(state: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until the agent's status socket answers; an agent that exits first is an error, not a wait."""
    def answered() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}")
        try:
            status(state)
        except OSError:
            return False
        return True
    wait_until(answered, timeout_s, "the agent's status socket", pause_s=0.1)


def counter_sum(doc: dict[str, Any], contains: str, label: str | None = None) -> int:
    return sum(n for k, v in doc["counters"].items() if contains in k for lab, n in v.items()
               if label is None or lab == label)


def stop_process(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- load: an MQTT publisher process and a pty writer --------------------------------------------


def publish_main(argv: list[str]) -> None:
    """`bench_suite publish HOST PORT TOPIC_PREFIX RATE SECONDS`: QoS 1 JSON messages at RATE/s."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    host, port, prefix, rate, seconds = argv[0], int(argv[1]), argv[2], float(argv[3]), float(argv[4])
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while i < due:
            body = {f"t{k}": round(20 + ((i * 7 + k * 13) % 1000) / 100, 2) for k in range(VALUES_PER_MESSAGE)}
            client.publish(f"{prefix}/dev{i % 20}", json.dumps(body, separators=(",", ":")), qos=1)
            i += 1
        time.sleep(0.005)
    client.loop_stop()
    client.disconnect()


class PtyWriter:
    """SLF/1 frames of ten readings to a pty at `rate` frames/s (blocking writes: back-pressure shows)."""

    def __init__(self, rate: float) -> None:
        from edgecollect.sources.serial.framing import slf1

        self.slf1 = slf1
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.rate = rate
        self.frames = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> PtyWriter:
        self._thread.start()
        return self

    def _run(self) -> None:
        start = time.monotonic()
        os.write(self.master, b"\r\n")
        while not self._stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            chunk = b"".join(
                self.slf1.encode("D", "bench-1", n, n * 10,
                                 [(f"f{k}", f"{20 + ((n + k) % 100) / 10:.1f}") for k in range(VALUES_PER_MESSAGE)])
                for n in range(self.frames, due))
            if chunk:
                try:
                    os.write(self.master, chunk)
                except OSError:
                    return
                self.frames = due
            time.sleep(0.01)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        os.close(self.master)
        os.close(self.slave)


def agent_config(state: Path, *, host_interval: str = "1s", mqtt_url: str = "", serial_port: str = "",
                 upstream: str = "") -> str:
    text = (f'[agent]\nstate_dir = "{state}"\nlog_level = "warning"\nclock = "assume_synced"\n'
            '[batch]\nflush_interval = "1s"\nmax_points = 5000\n[buffer]\nmax_points = 100000\n'
            f'[spool]\nmax_size = "2GiB"\n[sources.host]\ninterval = "{host_interval}"\n')
    if mqtt_url:
        text += (f'[[sources.mqtt]]\nserver = "{mqtt_url}"\nclient_id = "bench-agent"\nqos = 1\nprotocol = "5"\n'
                 f'max_unacked = {MQTT_WINDOW}\n  [[sources.mqtt.subscribe]]\n  topic = "bench/{{device}}"\n'
                 '  format = "json"\n')
    if serial_port:
        text += f'[[sources.serial]]\nport = "{serial_port}"\nframing = "slf1"\n'
    if upstream:
        text += f'[upstream]\nendpoint = "{upstream}"\ntls = {{ insecure = true }}\n'
    return text


def footprint(rate: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """The whole agent (host + MQTT + serial, offline: spool only) at `rate` points/s in total."""
    from tests.support.broker import Broker

    work = tmp / f"fp{rate}"
    work.mkdir()
    broker = Broker(work, options={"max_inflight_messages": str(MQTT_WINDOW)})
    # mosquitto sends a client at most max_inflight_messages unacked QoS 1 messages (its default is
    # 20; the test broker's 100), and the agent acks only once a batch is fsync'd: the window bounds
    # MQTT throughput to window / (batch + fsync time). A gateway expecting bursts raises it.
    broker.start()
    state = work / "state"
    per_source = rate / 2 / VALUES_PER_MESSAGE  # half MQTT messages, half serial frames, ten readings each
    writer = PtyWriter(per_source)
    config = work / "agent.toml"
    config.write_text(agent_config(state, mqtt_url=broker.url, serial_port=writer.path))
    agent = AgentProcess(config, state, work / "agent.log").start()
    pub: subprocess.Popen[bytes] | None = None
    try:
        agent.wait_up(60)
        time.sleep(2.0)  # warm: imports done, sessions up
        pub = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_suite", "publish", broker.host,
                                str(broker.port), "bench", str(per_source), str(seconds + 5)], cwd=REPO)
        writer.start()
        time.sleep(3.0)  # ramp
        before = status(state)
        meter = Meter(agent.pid)
        time.sleep(seconds)
        after = status(state)
        figures = meter.stop()
    finally:
        if pub is not None:
            stop_process(pub)
        writer.close()
        agent.stop()
        broker.stop()
    def delta(name: str) -> int:
        return counter_sum(after, name) - counter_sum(before, name)

    accepted = {k: delta(f"edgecollect.{k}.points_accepted") for k in ("mqtt", "serial", "host", "self")}
    points = sum(accepted.values())
    written, batched = delta("edgecollect.spool.bytes_written"), delta("edgecollect.batch.points")
    dropped = counter_sum(after, "edgecollect.buffer.dropped")
    figures.update(target_points_per_s=rate, achieved_points_per_s=round(points / figures["wall_s"]),
                   accepted_by_source={k: round(v / figures["wall_s"]) for k, v in accepted.items()},
                   cpu_us_per_point=round(figures["cpu_s"] * 1e6 / max(points, 1), 2),
                   spool_bytes_per_point=round(written / max(batched, 1), 2), ring_dropped=dropped)
    f = figures
    print(f"footprint {rate}/s: achieved {f['achieved_points_per_s']}/s, CPU {f['cpu_pct_of_one_core']}% of one core "
          f"({f['cpu_us_per_point']} µs/point), RSS mean {f['rss_mean_mib']} MiB max {f['rss_max_mib']} MiB, "
          f"USS {f['uss_mib']} MiB, spool {f['spool_bytes_per_point']} B/point")
    return figures


# -- collectd side by side -----------------------------------------------------------------------


def ensure_collectd() -> str:
    found = shutil.which("collectd") or ("/usr/sbin/collectd" if os.access("/usr/sbin/collectd", os.X_OK) else "")
    if not found:
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "collectd-core"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, capture_output=True)
        found = shutil.which("collectd") or "/usr/sbin/collectd"
    return found


COLLECTD_PLUGINS = ("cpu", "memory", "load", "disk", "interface", "df", "swap", "uptime", "thermal", "processes")


def collectd_vs_agent(seconds: float, tmp: Path, interval_s: int = 1) -> dict[str, Any]:
    """collectd and the agent, each alone, collecting host metrics every `interval_s` to a local file."""
    binary = ensure_collectd()
    version = subprocess.run(["dpkg-query", "-W", "-f=collectd-core ${Version}", "collectd-core"],
                             capture_output=True, text=True).stdout.splitlines()[0:1]
    work = tmp / "collectd"
    (work / "csv").mkdir(parents=True)
    conf = work / "collectd.conf"
    plugins = "\n".join(f"LoadPlugin {p}" for p in (*COLLECTD_PLUGINS, "csv"))
    conf.write_text(f'Interval {interval_s}\nFQDNLookup false\nHostname "bench"\nBaseDir "{work}"\n'
                    f'PIDFile "{work}/collectd.pid"\nPluginDir "/usr/lib/collectd"\n'
                    f'TypesDB "/usr/share/collectd/types.db"\n{plugins}\n'
                    f'<Plugin csv>\n  DataDir "{work}/csv"\n  StoreRates false\n</Plugin>\n')
    out: dict[str, Any] = {"interval_s": interval_s, "collectd_version": version[0] if version else "",
                           "collectd_plugins": list(COLLECTD_PLUGINS)}
    proc = subprocess.Popen([binary, "-f", "-C", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)
        meter = Meter(proc.pid)
        time.sleep(seconds)
        out["collectd"] = meter.stop()
    finally:
        stop_process(proc)
    values = sum(len(f.read_text().splitlines()) - 1 for f in (work / "csv").rglob("*-*") if f.is_file())
    out["collectd"]["values_written"] = values

    state = work / "agent-state"
    config = work / "agent.toml"
    config.write_text(agent_config(state, host_interval=f"{interval_s}s"))
    agent = AgentProcess(config, state, work / "agent.log").start()
    try:
        agent.wait_up(60)
        time.sleep(3.0)
        before = status(state)
        meter = Meter(agent.pid)
        time.sleep(seconds)
        after = status(state)
        out["edgecollect"] = meter.stop()
    finally:
        agent.stop()
    out["edgecollect"]["values_written"] = (counter_sum(after, "edgecollect.host.points_accepted")
                                            - counter_sum(before, "edgecollect.host.points_accepted"))
    for name in ("collectd", "edgecollect"):
        f = out[name]
        print(f"{name}: host metrics every {interval_s}s: CPU {f['cpu_pct_of_one_core']}% of one core, "
              f"RSS mean {f['rss_mean_mib']} MiB, USS {f['uss_mib']} MiB, "
              f"{f['values_written']} values in {f['wall_s']}s")
    return out


# -- stages in-process ---------------------------------------------------------------------------


def stage_costs(messages: int, tmp: Path) -> dict[str, Any]:
    """CPU µs per point of each stage, on the footprint's data (MQTT JSON and SLF/1, ten readings each)."""
    import threading as th

    from edgecollect.batch import from_ipc
    from edgecollect.batcher import Batcher
    from edgecollect.buffer import Ring
    from edgecollect.clock import Clock
    from edgecollect.exporters.otap_encode import OtapStreamEncoder
    from edgecollect.model import Resource, SeriesRegistry, attrs
    from edgecollect.sources.base import SourceContext
    from edgecollect.sources.mqtt.config import SubscribeConfig
    from edgecollect.sources.mqtt.formats import DEFAULT_PREFIXES, PARSERS, Message, Metadata, Rule
    from edgecollect.sources.serial import SerialConfig
    from edgecollect.sources.serial.framing import make_parser, slf1
    from edgecollect.spool import Spool
    from edgecollect.telemetry import Telemetry

    def cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
        t = time.process_time()
        result = fn()
        return time.process_time() - t, result

    rule = Rule.build(SubscribeConfig(topic="bench/{device}", format="json"), DEFAULT_PREFIXES["json"], {},
                      "if_recent", 300.0, 8)
    meta = Metadata()
    now = time.time_ns()
    msgs = [Message(f"bench/dev{i % 20}", json.dumps(
        {f"t{k}": round(20 + ((i * 7 + k * 13) % 1000) / 100, 2) for k in range(VALUES_PER_MESSAGE)}).encode(),
        {"device": f"dev{i % 20}"}, False, now + i * 1000) for i in range(messages)]
    lines = [slf1.encode("D", "bench-1", n, n * 10, [(f"f{k}", f"{20 + ((n + k) % 100) / 10:.1f}")
                                                        for k in range(VALUES_PER_MESSAGE)]).rstrip(b"\r\n")
             for n in range(messages)]
    parse_json = PARSERS["json"]
    t_mqtt, mqtt_out = cpu(lambda: [parse_json(m, rule, meta) for m in msgs])
    serial = make_parser(SerialConfig(port="bench", framing="slf1"))
    t_serial, serial_out = cpu(lambda: [serial.parse(line, now) for line in lines])
    points = [p for out in (*mqtt_out, *serial_out) for p in out.points]
    n = len(points)

    telemetry = Telemetry()
    registry = SeriesRegistry()
    ring = Ring("bench", n + 10, "drop_oldest", telemetry.counter("buffer", "dropped", "policy"),
                telemetry.counter("buffer", "logs_dropped", "policy"))
    ctx = SourceContext("bench", "bench", ring, th.Event(), registry, telemetry, Clock())
    t_buffer, _ = cpu(lambda: [ctx.emit(o.points) for o in (*mqtt_out, *serial_out)])

    encoded: list[tuple[str, bytes, int]] = []

    def keep(signal: str, data: bytes, points: int) -> int:  # the batcher's write, minus the disk
        encoded.append((signal, data, points))
        return len(encoded)

    batcher = Batcher([ring], registry, Resource(attrs({"host.name": "bench"})), "boot", keep, telemetry, 10.0, 5000)
    t_batch, _ = cpu(batcher.flush)

    spool = Spool(tmp / "stage-spool", telemetry, max_size=1 << 34)
    spool.open()
    wall = time.monotonic()
    t_spool, _ = cpu(lambda: [spool.append(s, d, p) for s, d, p in encoded])
    wall_spool = time.monotonic() - wall
    spool_bytes = spool.stats().bytes

    batches = [from_ipc(d) for _, d, _ in encoded]
    def encode_all() -> list[bytes]:
        enc = OtapStreamEncoder("metrics")  # a fresh stream each time, as after a reconnect
        return [enc.encode(b).SerializeToString() for b in batches]

    best = float("inf")
    for _ in range(3):  # best of three: the figure is the encoder, not a noisy neighbour
        t_enc, bars = cpu(encode_all)
        best = min(best, t_enc)

    send = drain(spool, tmp, "stages")
    per = {"parse (mqtt json)": t_mqtt * 1e6 / (n / 2), "parse (serial slf1)": t_serial * 1e6 / (n / 2),
           "buffer": t_buffer * 1e6 / n, "batch": t_batch * 1e6 / n, "spool (fsync per batch)": t_spool * 1e6 / n,
           "encode (OTAP)": best * 1e6 / n,
           "send (spool read + decode + gRPC + ack + delete)": max(0.0, send["cpu_us_per_point"] - best * 1e6 / n)}
    per = {k: round(v, 3) for k, v in per.items()}
    print(f"stages, {n} points in {len(encoded)} batches (µs CPU per point):")
    for k, v in per.items():
        print(f"  {k:48s} {v:8.3f}")
    return {"points": n, "batches": len(encoded), "us_per_point": per,
            "spool_bytes_per_point": round(spool_bytes / n, 2),
            "wire_bytes_per_point_otap": round(sum(map(len, bars)) / n, 2), "spool_wall_s": round(wall_spool, 2)}


# -- drain ---------------------------------------------------------------------------------------


def drain(spool: Any, tmp: Path, label: str) -> dict[str, Any]:
    """Forward a spool to the Go sink with the real Forwarder; wall time to empty and CPU per point."""
    import threading as th

    from edgecollect.exporters.forwarder import Forwarder
    from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig
    from edgecollect.telemetry import Telemetry
    from tests.support.sink import Sink

    stats = spool.stats()
    sink = Sink(tmp / f"sink-{label}.jsonl").start()
    stop = th.Event()
    try:
        cfg = UpstreamConfig(endpoint=sink.grpc_address, tls=TlsConfig(insecure=True))
        fwd = Forwarder(cfg, spool, Telemetry(), stop)
        sink_proc = psutil.Process(sink._proc.pid) if sink._proc else None
        sink_cpu0 = sum(sink_proc.cpu_times()[:2]) if sink_proc else 0.0
        cpu0 = time.process_time()
        t0 = time.monotonic()
        thread = th.Thread(target=fwd.run, daemon=True)
        thread.start()
        while spool.stats().files:
            time.sleep(0.02)
        wall = time.monotonic() - t0
        cpu = time.process_time() - cpu0
        sink_cpu = (sum(sink_proc.cpu_times()[:2]) - sink_cpu0) if sink_proc else 0.0
        stop.set()
        fwd.notify()
        thread.join(15)
    finally:
        sink.stop()
    out = {"points": stats.points, "batches": stats.files, "spool_bytes": stats.bytes, "wall_s": round(wall, 2),
           "points_per_s": round(stats.points / wall), "cpu_us_per_point": round(cpu * 1e6 / stats.points, 3),
           "sink_cpu_us_per_point": round(sink_cpu * 1e6 / stats.points, 3)}
    print(f"drain ({label}): {stats.points} points in {stats.files} batches in {wall:.1f}s = "
          f"{out['points_per_s']} points/s; agent CPU {out['cpu_us_per_point']} µs/point, "
          f"sink CPU {out['sink_cpu_us_per_point']} µs/point")
    return out


def drain_backlog(points: int, tmp: Path) -> dict[str, Any]:
    """A large backlog (host-like batches of 5,000 points) drained to the reference sink."""
    from edgecollect.spool import Spool
    from edgecollect.telemetry import Telemetry
    from tests.core.batches import metrics_ipc

    spool = Spool(tmp / "backlog", Telemetry(), max_size=1 << 36)
    spool.open()
    payloads = [metrics_ipc(5000, seed=s) for s in range(8)]
    for i in range(points // 5000):
        spool.append("metrics", payloads[i % len(payloads)], 5000)
    return drain(spool, tmp, "backlog")


# -- wire ----------------------------------------------------------------------------------------


def wire(minutes: float) -> list[dict[str, Any]]:
    """bench_wire's datasets and encoders (ours, OTLP, the Go producer), as rows for the report."""
    import random

    from tests.bench import bench_wire as bw

    rows: list[dict[str, Any]] = []
    for make in (bw.host_dataset, lambda r: bw.mqtt_dataset(r, 200)):
        for interval in (10, 60):
            rng = random.Random(42)
            ds = make(rng)
            batches = list(ds.batches(int(minutes * 60), interval, rng))
            points = sum(b.num_rows for b in batches)
            results, cpu = bw.ours(batches, points)
            otlp_results, lines, cpu_otlp = bw.otlp(batches, points)
            results = otlp_results + bw.go_producer(lines, points) + results
            bw.report(f"{ds.name}, {len(batches)} batches of {interval} s", results, cpu, cpu_otlp)
            rows.append({"dataset": ds.name, "interval_s": interval, "points": points,
                         "cpu_us_per_point_ours": round(cpu, 3), "cpu_us_per_point_otlp": round(cpu_otlp, 3),
                         "bytes_per_point": {r.label: round(r.per_point, 3) for r in results}})
    return rows


def run(seconds: float, only: set[str], wire_minutes: float, backlog_points: int) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine(), "seconds_per_run": seconds,
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"machine: {results['machine']}")
    with tempfile.TemporaryDirectory(prefix="edgecollect-bench-") as d:
        tmp = Path(d)
        if "footprint" in only:
            results["mqtt_window"] = MQTT_WINDOW
            results["footprint"] = [footprint(rate, seconds, tmp) for rate in RATES]
        if "collectd" in only:
            results["collectd"] = collectd_vs_agent(seconds, tmp)
        if "stages" in only:
            results["stages"] = stage_costs(20_000, tmp)
        if "drain" in only:
            results["drain"] = drain_backlog(backlog_points, tmp)
        if "wire" in only:
            results["wire"] = wire(wire_minutes)
    results["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "publish":
        publish_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per footprint run")
    parser.add_argument("--only", default="footprint,collectd,stages,drain,wire")
    parser.add_argument("--wire-minutes", type=float, default=5.0)
    parser.add_argument("--backlog-points", type=int, default=2_000_000)
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args()
    results = run(args.seconds, set(args.only.split(",")), args.wire_minutes, args.backlog_points)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
