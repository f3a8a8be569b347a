"""What every chaos scenario shares: the quick/full scale, a view of the agent's spool and of the Go
sink, the accounting line (published / delivered / duplicated / missing), the agent's config, and
a loopback TCP proxy that injects upstream faults. (The agent as a process and the bounded wait
are tests.support.agent and tests.support.wait.)

The quick variant runs in the normal test command; `EDGECOLLECT_FULL=1` selects the figures the
issue gives in brackets (200 kill cycles, 500 damage cases, 30 min of upstream faults, 50 broker
restarts and serial unplugs). Nothing here asserts on time: waits are bounded waits for outcomes.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from edgecollect.batch import from_ipc
from edgecollect.spool import SUFFIX, Damaged, unframe
from tests.support.sink import Sink

REPO = Path(__file__).resolve().parents[2]
FULL = os.environ.get("EDGECOLLECT_FULL", "") not in ("", "0")
RESULTS = REPO / "tests" / "chaos" / "results"  # full runs leave their figures here (git-ignored)


def scale(quick: int, full: int) -> int:
    """The quick figure in CI, the issue's bracketed figure with EDGECOLLECT_FULL=1."""
    return full if FULL else quick


# -- accounting --------------------------------------------------------------------------------

PointKey = tuple[str, str, int, float]  # (metric, attributes as sorted JSON, time ns, value)


@dataclass
class Tally:
    """Published vs delivered for one stream of uniquely identifiable points."""

    label: str
    published: set[Any] = field(default_factory=set)
    delivered: collections.Counter[Any] = field(default_factory=collections.Counter)
    dropped_counted: int = 0  # points the agent counted as dropped by policy (long outage only)

    @property
    def missing(self) -> set[Any]:
        return self.published - set(self.delivered)

    @property
    def duplicated(self) -> int:
        return sum(c - 1 for k, c in self.delivered.items() if c > 1 and k in self.published)

    @property
    def unaccounted(self) -> int:
        return max(0, len(self.missing) - self.dropped_counted)

    def line(self) -> str:
        dropped = f" dropped(counted)={self.dropped_counted}" if self.dropped_counted else ""
        return (f"{self.label}: published={len(self.published)} delivered={len(self.published & set(self.delivered))} "
                f"duplicated={self.duplicated}{dropped} missing={self.unaccounted}")


def report(scenario: str, tallies: Iterable[Tally], **figures: Any) -> str:
    """Print the scenario's accounting (and keep it under tests/chaos/results in full runs)."""
    tallies = list(tallies)
    lines = [f"[chaos] {scenario} ({'full' if FULL else 'quick'})"]
    lines += [f"  {t.line()}" for t in tallies]
    lines += [f"  {k}={v}" for k, v in figures.items()]
    text = "\n".join(lines)
    print("\n" + text)
    if FULL:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with open(RESULTS / "chaos.log", "a", encoding="utf-8") as fh:
            fh.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + text + "\n")
    return text


def _attrs_key(attrs: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in attrs.items() if not k.startswith("edgecollect.")}, sort_keys=True)


def batch_points(batch: pa.RecordBatch) -> Iterator[PointKey]:
    """Every point of a spooled metrics batch as a comparable key."""
    names = batch.column("name").to_pylist()
    attrs = batch.column("attributes").to_pylist()
    times = batch.column("time_unix_nano").cast(pa.int64()).to_pylist()
    ints = batch.column("int_value").to_pylist()
    floats = batch.column("double_value").to_pylist()
    for n, a, t, i, f in zip(names, attrs, times, ints, floats, strict=True):
        yield n, _attrs_key(json.loads(a)), t, float(i if i is not None else f)


def _otlp_attr(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    return int(v.get("intValue", 0))


def sink_points(sink: Sink) -> collections.Counter[PointKey]:
    """Every metrics point the Go decoder accepted (OTLP JSON), with multiplicity."""
    docs = (r["data"] if isinstance(r["data"], dict) else json.loads(r["data"]) for r in sink.records(signal="metrics"))
    metrics = (m for d in docs for rm in d.get("resourceMetrics", []) for sm in rm.get("scopeMetrics", [])
               for m in sm.get("metrics", []))
    return collections.Counter(
        (m["name"], _attrs_key({a["key"]: _otlp_attr(a["value"]) for a in dp.get("attributes", [])}),
         int(dp["timeUnixNano"]), float(dp["asInt"]) if "asInt" in dp else float(dp.get("asDouble", 0.0)))
        for m in metrics for dp in (m.get("gauge") or m.get("sum") or {}).get("dataPoints", []))


class SpoolWatcher:
    """Keeps every point that was ever durable in a spool directory, read-only, from its own thread.

    A batch file exists under its final name only after fsync + rename, so whatever this sees was
    durable; the forwarder may delete it once acknowledged, in which case the sink has it. Names
    repeat after the spool empties (sequence numbers restart), so files are told apart by their
    creation time too.
    """

    def __init__(self, directory: Path, interval_s: float = 0.05) -> None:
        self.directory = directory
        self.interval_s = interval_s
        self.points: set[PointKey] = set()
        self._seen: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spool-watcher", daemon=True)

    def __enter__(self) -> SpoolWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.scan()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.scan()

    def scan(self) -> None:
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                info, payload = unframe(path.read_bytes())
            except (OSError, Damaged):
                continue  # acked meanwhile, or damaged on purpose by a test
            key = (path.name, info.created_ns)
            if key in self._seen:
                continue
            self._seen.add(key)
            if info.signal == "metrics":
                self.points.update(batch_points(from_ipc(payload)))


def spool_points(directory: Path) -> list[PointKey]:
    """Points in the valid batch files of a spool right now."""
    out: list[PointKey] = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        with contextlib.suppress(OSError, Damaged):
            info, payload = unframe(path.read_bytes())
            if info.signal == "metrics":
                out.extend(batch_points(from_ipc(payload)))
    return out


def total(counter: dict[str, int], label_contains: str = "") -> int:
    return sum(v for k, v in counter.items() if label_contains in k)


# -- upstream faults ---------------------------------------------------------------------------


class FaultProxy:
    """A loopback TCP proxy (threads) in front of the sink, whose behaviour a test switches:

    pass       bytes flow both ways
    reset      every open connection is closed with RST, new ones are reset at once
    blackhole  connections are accepted, nothing is forwarded either way (a dead NAT path)
    slow       every chunk is delayed by `delay_s` (slow acks, a congested uplink)
    """

    def __init__(self, target_port: int, delay_s: float = 0.2) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self.mode = "pass"
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.connections = 0
        self.resets = 0
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    def set(self, mode: str) -> None:
        assert mode in ("pass", "reset", "blackhole", "slow"), mode
        self.mode = mode
        if mode == "reset":
            with self._lock:
                conns = list(self._conns)
            for c in conns:
                self._rst(c)

    def _rst(self, s: socket.socket) -> None:
        with contextlib.suppress(OSError):
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        self.resets += 1

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            if self.mode == "reset":
                self._rst(client)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=2)
            except OSError:
                self._rst(client)  # the sink is down: the agent sees a refused/reset connection
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                while self.mode == "blackhole" and not self._stop.is_set():
                    time.sleep(0.05)  # hold the bytes: the peer sees silence, not an error
                if self.mode == "slow":
                    time.sleep(self.delay_s)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with self._lock:
                    self._conns.discard(s)
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self._thread.join(5)
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.close()


def rng(name: str) -> random.Random:
    """A fixed seed per scenario, so a failing quick run replays exactly."""
    return random.Random(f"edgecollect-chaos-{name}")


def agent_toml(
    state: Path,
    *,
    upstream_port: int | None = None,
    host_interval: str | None = None,
    mqtt: tuple[str, str, str] | None = None,  # (broker url, client id, topic filter) at QoS 1, plain
    serial_port: str | None = None,  # SLF/1 on a pty path or glob
    spool_max: str = "256MiB",
    when_full: str = "drop_oldest",
    flush: str = "200ms",
    self_interval: str = "1h",
) -> str:
    """An agent config for a scenario: fast flushes and retries, everything else at its default."""
    text = (f'[agent]\nstate_dir = "{state}"\nlog_level = "warning"\nclock = "assume_synced"\n'
            f'shutdown_timeout = "10s"\nself_interval = "{self_interval}"\n'
            f'[batch]\nflush_interval = "{flush}"\nmax_points = 5000\n'
            f'[spool]\nmax_size = "{spool_max}"\nwhen_full = "{when_full}"\n')
    text += f'[sources.host]\ninterval = "{host_interval}"\n' if host_interval else "[sources.host]\nenabled = false\n"
    if mqtt is not None:
        url, client_id, topic = mqtt
        text += (f'[[sources.mqtt]]\nserver = "{url}"\nclient_id = "{client_id}"\nqos = 1\n'
                 f'reconnect_min = "50ms"\nreconnect_max = "500ms"\n'
                 f'  [[sources.mqtt.subscribe]]\n  topic = "{topic}"\n  format = "plain"\n')
    if serial_port is not None:
        text += (f'[[sources.serial]]\nport = "{serial_port}"\nframing = "slf1"\nprefix = "ser."\n'
                 'reopen_backoff_max = "200ms"\n')
    if upstream_port is not None:
        text += (f'[upstream]\nendpoint = "127.0.0.1:{upstream_port}"\nprotocol = "otap"\n'
                 'tls = { insecure = true }\nretry_initial = "100ms"\nretry_max = "1s"\n')
    return text
