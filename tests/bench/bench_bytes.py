"""Bytes benchmark (issue 12): what a running agent writes to disk and how often it wakes up, with a
healthy upstream (the Go interop sink), and the spool figures after 24 h offline.

    python -m tests.bench.bench_bytes [--seconds 120] [--profiles host,mqtt,offline] [--pythonpath DIR]

* host: host metrics every 10 s (defaults), upstream = the sink. Figures: process write_bytes
  (/proc/PID/io, the bytes the process sent to the storage layer) extrapolated to a day, spool files
  written, and wake-ups: context switches per minute per thread (/proc/PID/task/*/status, voluntary +
  involuntary), summed for the whole process.
* mqtt: the same plus a QoS 1 stream of 2,000 msg/s through a real mosquitto.
* offline: 24 h of host batches (8,640 cuts of the 97-series host profile of bench_wire) fed to a
  real spool as the batcher would, without waiting: spool bytes per point and files left.
`--pythonpath` runs the agent from another checkout (e.g. a `git archive` of main) for before/after.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.support.machine import cpu_model
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def machine() -> str:
    cpu = cpu_model()
    return (f"{cpu} cpus={os.cpu_count()} python={platform.python_version()} "
            f"date={time.strftime('%Y-%m-%d %H:%M:%S')}")


def write_bytes(pid: int) -> int:
    text = Path(f"/proc/{pid}/io").read_text()
    return int(re.search(r"^write_bytes: (\d+)", text, re.M).group(1))  # type: ignore[union-attr]


def switches(pid: int) -> dict[str, int]:
    """Context switches per thread (tid:comm -> voluntary + involuntary)."""
    out: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
            comm = (task / "comm").read_text().strip()
        except OSError:
            continue
        n = sum(int(m) for m in re.findall(r"^(?:non)?voluntary_ctxt_switches:\s+(\d+)", status, re.M))
        out[f"{task.name}:{comm}"] = n
    return out


def start_sink(port: int, work: Path) -> subprocess.Popen[bytes]:
    from tests.support.sink import build_sink

    binary = build_sink()
    proc = subprocess.Popen([str(binary), "-grpc-port", str(port), "-out", str(work / "sink.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("sink did not start")


def run_agent(config: str, seconds: float, warmup: float, pythonpath: str, work: Path) -> dict[str, object]:
    path = work / "agent.toml"
    path.write_text(config)
    env = {**os.environ, "PYTHONPATH": pythonpath}
    proc = subprocess.Popen([sys.executable, "-m", "edgecollect", "run", "-c", str(path)],
                            stdout=open(work / "agent.log", "ab"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                            cwd=work)  # not the repo: `-m` would import the package from the cwd
    try:
        time.sleep(warmup)
        w0, s0, t0 = write_bytes(proc.pid), switches(proc.pid), time.monotonic()
        time.sleep(seconds)
        w1, s1, t1 = write_bytes(proc.pid), switches(proc.pid), time.monotonic()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    span = t1 - t0
    per_thread = {k: (s1[k] - s0.get(k, 0)) * 60 / span for k in s1}
    spool = work / "state" / "spool"
    sink_out = work / "sink.jsonl"
    sink_lines = sink_out.read_text().splitlines() if sink_out.exists() else []
    return {"sink_batches": len(sink_lines), "sink_points": sum(line.count('"asDouble"') + line.count('"asInt"')
                                                                 for line in sink_lines),
            "write_bytes_per_day": (w1 - w0) * 86400 / span, "span_s": span,
            "wakeups_per_min": sum(per_thread.values()), "per_thread": per_thread,
            "spool_files_left": len(list(spool.glob("*.ecb"))) if spool.exists() else 0}


def agent_config(work: Path, port: int, extra: str = "") -> str:
    return (f'[agent]\nstate_dir = "{work / "state"}"\nlog_level = "warning"\n'
            f'[upstream]\nendpoint = "127.0.0.1:{port}"\ntls = {{ insecure = true }}\n{extra}')


def report(name: str, r: dict[str, object]) -> None:
    print(f"\n### {name}\n")
    print(f"process write_bytes: {r['write_bytes_per_day']:,.0f} B/day (measured over {r['span_s']:.0f} s)")
    print(f"wake-ups: {r['wakeups_per_min']:.0f}/min for the whole process; spool files at stop: "
          f"{r['spool_files_left']}; the sink decoded {r['sink_batches']} batches, {r['sink_points']} points")
    per_thread = r["per_thread"]
    assert isinstance(per_thread, dict)
    for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1]):
        print(f"  {k:32s} {v:8.1f}/min")


def host(seconds: float, pythonpath: str, extra: str = "") -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-bytes-"))
    port = free_port()
    sink = start_sink(port, work)
    try:
        report("host every 10 s + healthy upstream (defaults)",
               run_agent(agent_config(work, port, extra), seconds, 25.0, pythonpath, work))
    finally:
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def mqtt(seconds: float, pythonpath: str, rate: float = 2000.0) -> None:
    import paho.mqtt.client as paho

    work = Path(tempfile.mkdtemp(prefix="bench-bytes-"))
    port, mport = free_port(), free_port()
    sink = start_sink(port, work)
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {mport} 127.0.0.1\nallow_anonymous true\nmax_inflight_messages 1000\n"
                    "max_queued_messages 0\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    try:
        time.sleep(1.0)
        extra = (f'[[sources.mqtt]]\nserver = "mqtt://127.0.0.1:{mport}"\nclient_id = "bench-bytes"\nqos = 1\n'
                 '  [[sources.mqtt.subscribe]]\n  topic = "bench/#"\n  format = "plain"\n')

        def publish() -> None:
            pub = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bytes-pub")
            pub.max_inflight_messages_set(1000)
            pub.max_queued_messages_set(0)
            pub.connect("127.0.0.1", mport)
            pub.loop_start()
            rng = random.Random(1)
            n, started = 0, time.monotonic()
            while not stop.is_set():
                n += 1
                pub.publish(f"bench/s{n % 200}", f"{rng.uniform(0, 100):.2f}", qos=1)
                ahead = n / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            pub.loop_stop()
            pub.disconnect()

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        report(f"MQTT QoS 1 at {rate:,.0f} msg/s + host + healthy upstream",
               run_agent(agent_config(work, port, extra), seconds, 25.0, pythonpath, work))
    finally:
        stop.set()
        broker.terminate()
        broker.wait(10)
        sink.terminate()
        sink.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--profiles", default="host,mqtt,offline")
    parser.add_argument("--pythonpath", default=str(REPO), help="where the agent's edgecollect package is")
    args = parser.parse_args()
    print(f"machine: {machine()}\nagent from: {args.pythonpath}")
    profiles = args.profiles.split(",")
    if "host" in profiles:
        host(args.seconds, args.pythonpath)
    if "mqtt" in profiles:
        mqtt(args.seconds, args.pythonpath)
    if "offline" in profiles:
        from tests.bench.bench_offline import offline

        offline()


if __name__ == "__main__":
    main()
