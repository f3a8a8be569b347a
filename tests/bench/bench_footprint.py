"""Footprint of the agent at rest and under MQTT load, side by side with its peers (issue 11).

    python -m tests.bench.bench_footprint [--minutes 2] [--profiles A,B,C]
                                          [--peers edgecollect,telegraf,otelcol,collectd] [--json OUT]

Profiles (each agent in its own process; every agent of a profile runs at the same time, on the same
work, after a warm-up of `--warmup` seconds):

    A  host metrics every 10 s, offline (edgecollect: built-in defaults, spool only)
    B  A + upstream: the Go OTAP/OTLP sink of tests/interop (OTAP for edgecollect, OTLP/gRPC for peers)
    C  B + MQTT QoS 1 at 2,000 msg/s (ten JSON readings each) through a real mosquitto

Figures per process, from /proc: RSS, PSS and anonymous memory (smaps_rollup, last sample and
maximum), threads, wake-ups per minute (voluntary + involuntary context switches summed over
/proc/PID/task/*/status, sampled every few seconds so short-lived threads are mostly seen), CPU-s
per minute (utime + stime, tick-sampled) and "CPU-s/min run" (the threads' run time from schedstat,
exact: on a VM the tick figure can charge whole ticks to short wake-ups and read several times
high), and for C CPU per MQTT message. Each row ends with the ratio edgecollect / best peer.
Peers come from tests/bench/peers/build-peers.sh (cached under ~/.cache/edgecollect/peers); a peer
that is not built, or has no counterpart for a profile, is listed with the reason. Figures only,
nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.bench_suite import machine, status, stop_process, wait_status

REPO = Path(__file__).resolve().parents[2]
PEERS_DIR = Path(__file__).resolve().parent / "peers"
PEER_CACHE = Path.home() / ".cache" / "edgecollect" / "peers"
MQTT_RATE = 2_000
SAMPLE_EVERY_S = 5.0
PROFILES = ("A", "B", "C")
AGENTS = ("edgecollect", "telegraf", "otelcol", "collectd")


# -- one process measured from /proc --------------------------------------------------------------


def smaps_rollup(pid: int) -> dict[str, int]:
    """Rss, Pss and Anonymous in bytes."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss", "Anonymous"):
            out[key] = int(rest.split()[0]) * 1024
    return out


def task_switches(pid: int) -> dict[int, int]:
    """Context switches (voluntary + involuntary) per live thread."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue  # the thread ended between listing and reading
        n = 0
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                n += int(line.split()[1])
        out[int(task.name)] = n
    return out


def task_run_ns(pid: int) -> dict[int, int]:
    """Nanoseconds each live thread has run (/proc/PID/task/*/schedstat): exact, where utime and
    stime are sampled at the kernel's tick and, on a VM, can charge a whole tick to a short wake-up."""
    out: dict[int, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended between listing and reading
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime, all threads


@dataclass
class Probe:
    """Samples one process every SAMPLE_EVERY_S from `start()` to `stop()`."""

    pid: int
    first: dict[int, int] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)
    memory: list[dict[str, int]] = field(default_factory=list)
    threads_max: int = 0
    cpu0: float = 0.0
    t0: float = 0.0
    run_first: dict[int, int] = field(default_factory=dict)
    run_last: dict[int, int] = field(default_factory=dict)

    def sample(self) -> None:
        switches = task_switches(self.pid)
        for tid, n in switches.items():
            self.first.setdefault(tid, n if self.t0 == 0.0 else 0)
            self.last[tid] = n
        self.threads_max = max(self.threads_max, len(switches))
        for tid, ns in task_run_ns(self.pid).items():
            self.run_first.setdefault(tid, ns if self.t0 == 0.0 else 0)
            self.run_last[tid] = ns
        self.memory.append(smaps_rollup(self.pid))

    def start(self) -> None:
        self.sample()  # t0 == 0: the threads alive now count from their present figure
        self.cpu0, self.t0 = cpu_seconds(self.pid), time.monotonic()

    def result(self, threads_now: int) -> dict[str, Any]:
        minutes = (time.monotonic() - self.t0) / 60
        wakeups = sum(self.last[tid] - self.first.get(tid, 0) for tid in self.last)
        last = self.memory[-1]
        return {
            "minutes": round(minutes, 2),
            "rss_mb": round(last["Rss"] / 1e6, 1), "pss_mb": round(last["Pss"] / 1e6, 1),
            "anon_mb": round(last["Anonymous"] / 1e6, 1),
            "rss_max_mb": round(max(m["Rss"] for m in self.memory) / 1e6, 1),
            "anon_max_mb": round(max(m["Anonymous"] for m in self.memory) / 1e6, 1),
            "threads": threads_now, "threads_max": self.threads_max,
            "wakeups_per_min": round(wakeups / minutes),
            "cpu_s_per_min": round((cpu_seconds(self.pid) - self.cpu0) / minutes, 4),
            "cpu_run_s_per_min": round(sum(self.run_last[t] - self.run_first.get(t, 0) for t in self.run_last)
                                       / 1e9 / minutes, 4),
        }


def per_thread(pid: int) -> dict[str, int]:
    """Live threads by name with their context switches so far (for the budget in docs/benchmarks)."""
    out: dict[str, int] = {}
    for tid, n in task_switches(pid).items():
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out[f"{name}#{tid}"] = n
    return out


# -- the agents ------------------------------------------------------------------------------------


@dataclass
class Work:
    """What every agent of a profile is pointed at."""

    profile: str
    directory: Path
    otlp_grpc: str = ""  # host:port of the sink (B, C)
    mqtt_host: str = ""
    mqtt_port: int = 0
    closed_port: int = 0  # where an offline peer that insists on an output sends (nothing listens)


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    messages: Any = None  # () -> int: MQTT messages taken so far, where the agent tells
    note: str = ""


def _template(name: str, work: Work) -> str:
    text = (PEERS_DIR / name).read_text()
    return (text.replace("@OTLP@", work.otlp_grpc or f"127.0.0.1:{work.closed_port}")
                .replace("@MQTT@", f"tcp://{work.mqtt_host}:{work.mqtt_port}")
                .replace("@MQTT_HOST@", work.mqtt_host).replace("@MQTT_PORT@", str(work.mqtt_port))
                .replace("@DIR@", str(work.directory)))


def edgecollect_config(work: Work, state: Path) -> str:
    """Built-in defaults, plus only what the profile adds."""
    text = f'[agent]\nstate_dir = "{state}"\nlog_level = "warning"\n'
    if work.profile in ("B", "C"):
        text += f'[upstream]\nendpoint = "{work.otlp_grpc}"\ntls = {{ insecure = true }}\n'
    if work.profile == "C":
        text += (f'[[sources.mqtt]]\nserver = "mqtt://{work.mqtt_host}:{work.mqtt_port}"\n'
                 'client_id = "fp-edgecollect"\nqos = 1\n'
                 '  [[sources.mqtt.subscribe]]\n  topic = "bench/+"\n  format = "json"\n')
    return text


def start_edgecollect(work: Work, env: dict[str, str]) -> Running:
    d = work.directory / "edgecollect"
    d.mkdir()
    state = d / "state"
    config = d / "agent.toml"
    config.write_text(edgecollect_config(work, state))
    with open(d / "agent.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "edgecollect", "run", "-c", str(config)], cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_status(state, proc)

    def messages() -> int:
        counters = status(state)["counters"]
        return sum(n for k, v in counters.items() if ".mqtt.messages" in k for n in v.values())

    return Running("edgecollect", proc, messages if work.profile == "C" else None)


def start_peer(name: str, work: Work) -> Running | str:
    """A started peer, or the reason it does not run in this profile."""
    d = work.directory / name
    d.mkdir()
    if name == "collectd":
        binary = shutil.which("collectd") or "/usr/sbin/collectd"
        if not os.access(binary, os.X_OK):
            return "not installed (bash tests/bench/peers/build-peers.sh collectd)"
        if work.profile == "C":
            return "its mqtt plugin reads only collectd's own topic/value format, not these JSON messages"
        conf = d / "collectd.conf"
        conf.write_text(_template("collectd.conf", Work(work.profile, d)))
        argv = [binary, "-f", "-C", str(conf)]
        note = "no OTLP output: writes CSV locally in every profile" if work.profile == "B" else ""
    elif name == "telegraf":
        binary = str(PEER_CACHE / "telegraf")
        if not os.access(binary, os.X_OK):
            return f"not built ({_build_log('telegraf')})"
        conf = d / "telegraf.conf"
        conf.write_text(_template(f"telegraf-{work.profile}.conf", work))
        argv = [binary, "--config", str(conf)]
        note = "offline: OTLP output to a closed port, buffering in memory" if work.profile == "A" else ""
    elif name == "otelcol":
        binary = str(PEER_CACHE / "otelcol-hostmetrics")
        if not os.access(binary, os.X_OK):
            return f"not built ({_build_log('otelcol')})"
        if work.profile == "C":
            return "the collector has no MQTT receiver (core or contrib)"
        conf = d / "otelcol.yaml"
        conf.write_text(_template("otelcol.yaml", work))
        argv = [binary, "--config", str(conf)]
        note = "offline: OTLP exporter to a closed port, queueing in memory" if work.profile == "A" else ""
    else:
        raise ValueError(name)
    with open(d / "out.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=d)
    return Running(name, proc, None, note)


def _log_tail(work: Work, name: str) -> str:
    logs = [p for p in (work.directory / name).glob("*.log") if p.is_file()]
    lines = [line for p in logs for line in p.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def _build_log(peer: str) -> str:
    log = PEER_CACHE / f"{peer}.log"
    tail = log.read_text().strip().splitlines()[-1:] if log.exists() else []
    return f"bash tests/bench/peers/build-peers.sh {peer}" + (f"; last build said: {tail[0][:160]}" if tail else "")


# -- a profile -------------------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_profile(profile: str, agents: list[str], minutes: float, warmup_s: float, tmp: Path,
                env: dict[str, str]) -> dict[str, Any]:
    work = Work(profile, tmp / profile, closed_port=_free_port())
    work.directory.mkdir()
    infra: list[Any] = []
    running: list[Running] = []
    skipped: dict[str, str] = {}
    try:
        if profile in ("B", "C"):
            from tests.support.sink import Sink

            sink = Sink(work.directory / "sink.jsonl").start()
            infra.append(sink)
            work.otlp_grpc = sink.grpc_address.removeprefix("http://")
        if profile == "C":
            from tests.support.broker import Broker

            broker = Broker(work.directory)
            broker.start()
            infra.append(broker)
            work.mqtt_host, work.mqtt_port = broker.host, broker.port
        for name in agents:
            started = start_edgecollect(work, env) if name == "edgecollect" else start_peer(name, work)
            if isinstance(started, str):
                skipped[name] = started
            else:
                running.append(started)
        pub = None
        if profile == "C":
            seconds = warmup_s + minutes * 60 + 30
            pub = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_suite", "publish", work.mqtt_host,
                                    str(work.mqtt_port), "bench", str(MQTT_RATE), str(seconds)], cwd=REPO)
            infra.insert(0, pub)
        time.sleep(warmup_s)
        for r in list(running):
            if r.proc.poll() is not None:  # it could not run this profile: say why, measure the others
                skipped[r.name] = f"exited with {r.proc.returncode} during warm-up: {_log_tail(work, r.name)}"
                running.remove(r)
        probes = {r.name: Probe(r.proc.pid) for r in running}
        before = {r.name: r.messages() for r in running if r.messages}
        for p in probes.values():
            p.start()
        end = time.monotonic() + minutes * 60
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(SAMPLE_EVERY_S, left))
            for r in running:
                if r.proc.poll() is not None:
                    raise RuntimeError(f"{r.name} exited with {r.proc.returncode} during profile {profile}")
                probes[r.name].sample()
        rows: dict[str, Any] = {}
        for r in running:
            row = probes[r.name].result(len(list(Path(f"/proc/{r.proc.pid}/task").iterdir())))
            row["threads_by_name"] = per_thread(r.proc.pid)
            if r.messages:
                taken = r.messages() - before[r.name]
                row["mqtt_msgs_per_s"] = round(taken / (row["minutes"] * 60))
                row["cpu_us_per_msg"] = round(row["cpu_s_per_min"] * row["minutes"] * 1e6 / max(taken, 1), 1)
            elif profile == "C":
                # A peer that does not count: CPU per message published (it was sent every one).
                row["cpu_us_per_msg"] = round(row["cpu_s_per_min"] * 1e6 / (MQTT_RATE * 60), 1)
                row["cpu_us_per_msg_basis"] = "published"
            if r.note:
                row["note"] = r.note
            rows[r.name] = row
        return {"profile": profile, "rows": rows, "skipped": skipped}
    finally:
        for r in running:
            stop_process(r.proc)
        for thing in infra:
            if isinstance(thing, subprocess.Popen):
                stop_process(thing)
            else:
                thing.stop()


# -- printing --------------------------------------------------------------------------------------

FIGURES = (("rss_mb", "RSS MB"), ("pss_mb", "PSS MB"), ("anon_mb", "anon MB"), ("threads", "threads"),
           ("wakeups_per_min", "wake-ups/min"), ("cpu_s_per_min", "CPU-s/min"),
           ("cpu_run_s_per_min", "CPU-s/min run"), ("cpu_us_per_msg", "µs CPU/msg"))


def print_profile(result: dict[str, Any]) -> None:
    rows, profile = result["rows"], result["profile"]
    names = list(rows)
    print(f"\nprofile {profile}: " + {"A": "host metrics every 10 s, offline",
                                     "B": "A + upstream (Go sink)",
                                     "C": f"B + MQTT QoS 1 at {MQTT_RATE} msg/s"}[profile])
    print(f"  {'figure':<14}" + "".join(f" {n:>12}" for n in names) + f" {'ratio':>8}")
    for key, label in FIGURES:
        values = {n: rows[n].get(key) for n in names}
        if all(v is None for v in values.values()):
            continue
        peers = [v for n, v in values.items() if n != "edgecollect" and v is not None]
        mine = values.get("edgecollect")
        ratio = f"{mine / min(peers):.2f}" if mine is not None and peers and min(peers) > 0 else "-"
        print(f"  {label:<14}" + "".join(f" {'' if v is None else v:>12}" for v in values.values()) + f" {ratio:>8}")
    if "edgecollect" in rows and "mqtt_msgs_per_s" in rows["edgecollect"]:
        print(f"  edgecollect took {rows['edgecollect']['mqtt_msgs_per_s']} msg/s")
    for n in names:
        if rows[n].get("cpu_us_per_msg_basis"):
            print(f"  {n}: µs CPU/msg per message published (it does not count what it took)")
        if rows[n].get("note"):
            print(f"  {n}: {rows[n]['note']}")
    for n, why in result["skipped"].items():
        print(f"  {n}: not run: {why}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0, help="measured window per profile (default 2)")
    ap.add_argument("--warmup", type=float, default=25.0, help="seconds before measuring (default 25)")
    ap.add_argument("--profiles", default="A,B,C")
    ap.add_argument("--peers", default=",".join(AGENTS), help="agents to run, edgecollect included")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment for edgecollect (e.g. MALLOC_ARENA_MAX=2)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the agents and peers on the way out
    profiles = [p for p in args.profiles.split(",") if p]
    agents = [a for a in args.peers.split(",") if a]
    unknown = set(profiles) - set(PROFILES) | set(agents) - set(AGENTS)
    if unknown:
        raise SystemExit(f"unknown profile or agent: {sorted(unknown)}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.update(kv.split("=", 1) for kv in args.env)
    info = machine()
    print(f"bench_footprint on {info['cpu_model']} ({info['cpus']} cores, {info['memory_gib']} GiB), "
          f"Python {info['python']}, {time.strftime('%Y-%m-%d %H:%M %Z')}; "
          f"{args.minutes} min per profile after {args.warmup:.0f} s warm-up; "
          f"edgecollect env: {' '.join(args.env) or '(none)'}")
    results = []
    with tempfile.TemporaryDirectory(prefix="edgecollect-fp-") as tmp:
        for profile in profiles:
            result = run_profile(profile, agents, args.minutes, args.warmup, Path(tmp), env)
            print_profile(result)
            results.append(result)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "minutes": args.minutes, "results": results}, indent=1))


if __name__ == "__main__":
    main()
