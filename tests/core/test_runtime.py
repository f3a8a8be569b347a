"""The agent as a whole: systemd notify, status socket, reload, clock repair across ring and spool."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest

from edgecollect.batch import from_ipc
from edgecollect.clock import FLAG_CLOCK_UNSYNCED, FLAG_TIME_REPAIRED, Clock
from edgecollect.config import loads
from edgecollect.model import LogRecord, Point, Series
from edgecollect.runtime import Agent
from edgecollect.timesync import ClockWatcher
from tests.support.agent import AgentProcess
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_notify_status_and_reload_under_a_fake_systemd(tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(notify_path))
    receiver.settimeout(0.2)
    messages: list[str] = []

    def collect() -> None:
        while True:
            try:
                messages.append(receiver.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=collect, daemon=True).start()
    state = tmp_path / "state"
    config = tmp_path / "gw.toml"
    config.write_text(
        f"[agent]\nstate_dir = '{state}'\n[batch]\nflush_interval = '1s'\n[sources.host]\ninterval = '1s'\n"
    )
    env = {"NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": ""}
    agent = AgentProcess(config, state, tmp_path / "agent.log", env=env).start()
    try:
        assert eventually(lambda: any("READY=1" in m for m in messages)), messages
        assert eventually(lambda: any("WATCHDOG=1" in m for m in messages)), messages
        ready = next(m for m in messages if "READY=1" in m)
        assert "STATUS=backlog" in ready and "upstream offline" in ready

        status = subprocess.run(
            [sys.executable, "-m", "edgecollect", "status", "--json", "-c", str(config)],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert status.returncode == 0, status.stderr
        doc = json.loads(status.stdout)
        assert doc["upstream"]["state"] == "offline" and "host" in doc["sources"]
        table = subprocess.run(
            [sys.executable, "-m", "edgecollect", "status", "-c", str(config)], capture_output=True, text=True, cwd=REPO
        )
        assert "SPOOL" in table.stdout and "UPSTREAM  offline" in table.stdout

        # An invalid config on SIGHUP is refused and the agent keeps running.
        good = config.read_text()
        config.write_text(good + "[spool]\nmax_size = 'huge'\n")
        agent.send(signal.SIGHUP)
        assert eventually(lambda: sum(1 for m in messages if "READY=1" in m) == 2)  # back, unchanged
        config.write_text(good.replace("interval = '1s'", "interval = '2s'"))
        agent.send(signal.SIGHUP)
        assert eventually(lambda: sum(1 for m in messages if "READY=1" in m) == 3)
        assert agent.alive
        files_before = len(list((state / "spool").glob("*.ecb")))
        assert eventually(lambda: len(list((state / "spool").glob("*.ecb"))) > files_before)
    finally:
        code = agent.stop()
        receiver.close()
    output = agent.log.read_text(errors="replace")
    assert code == 0, output
    assert "reload refused" in output and "spool.max_size" in output
    assert any("STOPPING=1" in m for m in messages)


def test_clock_step_repairs_ring_and_spool_of_this_boot(tmp_path: Path) -> None:
    synced = [False]
    wall_offset = [0]
    cfg = loads(f"[agent]\nstate_dir = '{tmp_path}'\n[sources.host]\nenabled = false\n")
    agent = Agent(cfg, clock=Clock(synced=lambda: synced[0]))
    agent.clock_watcher = ClockWatcher(
        lambda: synced[0],
        boot_id=agent.boot_id,
        wall_ns=lambda: time.time_ns() + wall_offset[0],
        boot_ns=time.monotonic_ns,
    )
    agent.spool.open()
    series = Series("sensor.temperature", "Cel", "gauge")
    ctx = agent.sources[0].ctx  # the self-telemetry context; any ring will do
    t_spooled = time.time_ns() - 5_000_000_000
    ctx.emit([Point(series, 21.5, t_spooled)])
    agent.batcher.flush()  # this one is on disk before the step
    t_ringed = time.time_ns() - 1_000_000_000
    ctx.emit([Point(series, 22.5, t_ringed)])  # this one is still in the ring at the step
    ctx.emit_log(LogRecord(t_ringed, "sensor rebooted"))  # a log record too
    counter = Series("sensor.pulses", "{pulse}", "cumulative")
    ctx.emit([Point(counter, 7, t_ringed, start_time_ns=t_spooled)])  # its start is on the old clock

    step_ns = 86_400 * 365 * 10**9  # the board booted a year in the past; NTP steps it forward
    wall_offset[0] = step_ns
    synced[0] = True
    agent.poll_clock()
    assert eventually(
        lambda: (
            agent.telemetry.find("edgecollect.clock.repairs") is not None
            and agent.telemetry.find("edgecollect.clock.repairs").value("spool") == 1
        )
    )  # type: ignore[union-attr]
    agent.batcher.flush()

    rows = []
    for batch in agent.spool.list("metrics"):
        table = pa.Table.from_batches([from_ipc(agent.spool.read(batch.id) or b"")])
        for name, t, v, f in zip(
            table.column("name").to_pylist(),
            table.column("time_unix_nano").cast(pa.int64()).to_pylist(),
            table.column("double_value").to_pylist(),
            table.column("flags").to_pylist(),
            strict=True,
        ):
            if name == "sensor.temperature":
                rows.append((v, t, f))
    logs = [from_ipc(agent.spool.read(b.id) or b"") for b in agent.spool.list("logs")]
    log_rows = [(r["body_str"], r["flags"]) for rb in logs for r in rb.select(["body_str", "flags"]).to_pylist()]
    log_times = [t for rb in logs for t in rb.column("time_unix_nano").cast(pa.int64()).to_pylist()]
    assert log_rows == [("sensor rebooted", FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED)]
    assert abs(log_times[0] - (t_ringed + step_ns)) < 1_000_000
    starts = {
        name: s
        for batch in agent.spool.list("metrics")
        for name, s in zip(
            from_ipc(agent.spool.read(batch.id) or b"").column("name").to_pylist(),
            from_ipc(agent.spool.read(batch.id) or b"").column("start_time_unix_nano").cast(pa.int64()).to_pylist(),
            strict=True,
        )
    }
    assert abs(starts["sensor.pulses"] - (t_spooled + step_ns)) < 1_000_000
    rows.sort()
    assert [(v, f) for v, _, f in rows] == [
        (21.5, FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED),
        (22.5, FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED),
    ]
    # The step is measured as wall-minus-boot-clock, so it carries the few ns the two clocks
    # drift apart between polls; a millisecond bounds that, a year is what moved.
    assert abs(rows[0][1] - (t_spooled + step_ns)) < 1_000_000
    assert abs(rows[1][1] - (t_ringed + step_ns)) < 1_000_000


def test_own_counters_flow_through_the_pipeline_into_the_spool(tmp_path: Path) -> None:
    cfg = loads(
        f"[agent]\nstate_dir = '{tmp_path}'\nself_interval = '100ms'\n"
        "[batch]\nflush_interval = '200ms'\n[sources.host]\ninterval = '100ms'\n"
    )
    agent = Agent(cfg)
    agent.start()
    try:
        assert eventually(lambda: len(agent.spool.list()) >= 3)
    finally:
        agent.shutdown()
    names: set[str] = set()
    for batch in agent.spool.list("metrics"):
        names.update(from_ipc(agent.spool.read(batch.id) or b"").column("name").to_pylist())
    for expected in (
        "edgecollect.spool.batches_written",
        "edgecollect.spool.bytes",
        "edgecollect.batch.points",
        "edgecollect.host.points_accepted",
        "edgecollect.buffer.memory",
        "system.cpu.utilization",
    ):
        assert expected in names, expected


def _own_counters_in_spool(agent: Agent) -> set[str]:
    names: set[str] = set()
    for batch in agent.spool.list("metrics"):
        names.update(from_ipc(agent.spool.read(batch.id) or b"").column("name").to_pylist())
    return names


def test_own_counters_at_the_flush_cadence_are_sampled_on_the_batchers_tick(tmp_path: Path) -> None:
    """self_interval == flush_interval (the defaults): no thread of its own, same counters, still running."""
    cfg = loads(
        f"[agent]\nstate_dir = '{tmp_path}'\nself_interval = '200ms'\n"
        "[batch]\nflush_interval = '200ms'\n[sources.host]\nenabled = false\n"
    )
    agent = Agent(cfg)
    agent.start()
    try:
        assert "source-self" not in {t.name for t in threading.enumerate()}
        assert eventually(lambda: "edgecollect.spool.batches_written" in _own_counters_in_spool(agent))
        assert [s.running for s in agent.status().sources if s.name == "self"] == [True]
    finally:
        agent.shutdown()
    assert [s.running for s in agent.status().sources if s.name == "self"] == [False]


def test_a_failing_own_sample_on_the_batchers_tick_is_counted_and_the_batcher_goes_on(tmp_path: Path) -> None:
    cfg = loads(
        f"[agent]\nstate_dir = '{tmp_path}'\nself_interval = '100ms'\n"
        "[batch]\nflush_interval = '100ms'\n[sources.host]\ninterval = '100ms'\n"
    )
    agent = Agent(cfg)
    calls: list[int] = []

    def broken() -> int:
        calls.append(1)
        raise RuntimeError("broken sample")

    assert agent._self_source is not None
    agent._self_source.sample = broken  # type: ignore[method-assign]
    agent.start()
    try:
        assert eventually(lambda: len(calls) >= 2)  # sampled again on a later tick: the batcher lives
        assert eventually(lambda: len(agent.spool.list("metrics")) >= 2)  # and still cuts the host's points
    finally:
        agent.shutdown()
    crashes = agent.telemetry.find("edgecollect.agent.source_crashes")
    assert crashes is not None and crashes.total() >= 2


def test_own_counters_at_another_cadence_keep_their_thread(tmp_path: Path) -> None:
    cfg = loads(f"[agent]\nstate_dir = '{tmp_path}'\nself_interval = '1s'\n[sources.host]\nenabled = false\n")
    agent = Agent(cfg)
    agent.start()
    try:
        assert agent._self_source is None
        assert "source-self" in {t.name for t in threading.enumerate()}
    finally:
        agent.shutdown()
