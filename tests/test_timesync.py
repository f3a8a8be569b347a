"""Time without an RTC: detecting an unsynchronised clock, noticing its step, repairing timestamps.

The step is simulated (a Pi booting at a stale date, then NTP stepping it by months): the watcher
takes its clocks as callables, and the samples go through a real Ring, the real batch builder and a
real Arrow IPC round trip. The kernel side is checked against a C program calling adjtimex(2).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from edgecollect.batch import build_logs, build_metrics, from_ipc, merge, to_ipc
from edgecollect.buffer import FLAG_INT, Drained, Ring
from edgecollect.clock import FLAG_CLOCK_UNSYNCED, FLAG_TIME_REPAIRED, Clock
from edgecollect.format.clockrepair import repair_columns, repair_drained, repair_spool_batch
from edgecollect.model import LogRecord, Resource, Series, SeriesRegistry, attrs
from edgecollect.telemetry import Telemetry
from edgecollect.timesync import (
    BUILD_DATE_NS,
    STA_UNSYNC,
    TIME_ERROR,
    ClockStep,
    ClockWatcher,
    KernelClock,
    SyncDetector,
    read_boot_id,
    read_kernel_clock,
)

S = 1_000_000_000
STALE = 1_700_000_000 * S  # the date a Pi without an RTC might boot at (Nov 2023)
MONTHS = 90 * 86400 * S  # how far NTP steps it forward
BOOT = "0b0c0d0e-1111-2222-3333-444455556666"


class SimClock:
    """Wall = boottime + offset; `step()` is what clock_settime does, `tick()` is time passing."""

    def __init__(self, wall_ns: int) -> None:
        self.boot = 5 * S
        self.offset = wall_ns - self.boot

    def wall(self) -> int:
        return self.boot + self.offset

    def boottime(self) -> int:
        return self.boot

    def tick(self, ns: int) -> None:
        self.boot += ns

    def step(self, ns: int) -> None:
        self.offset += ns


class SimKernel:
    """What adjtimex would return before and after an NTP daemon clears STA_UNSYNC."""

    def __init__(self) -> None:
        self.synced = False

    def read(self) -> KernelClock:
        if self.synced:
            return KernelClock(0, 0x2001, 500, 20, 10000, 32768000, 2, 1)
        return KernelClock(TIME_ERROR, STA_UNSYNC, 16_000_000, 16_000_000, 10000, 32768000, 2, 1)


def make_ring() -> tuple[Ring, Telemetry]:
    t = Telemetry()
    ring = Ring(
        "test", 1000, "drop_oldest", t.counter("buffer", "dropped", "policy"),
        t.counter("buffer", "logs_dropped", "policy"),
    )
    return ring, t


# -- detection ------------------------------------------------------------------------------------


def test_kernel_flags_decide_synchronisation() -> None:
    assert not SimKernel().read().synced
    k = SimKernel()
    k.synced = True
    assert k.read().synced
    assert not KernelClock(0, STA_UNSYNC, 0, 0, 0, 0, 0, 0).synced
    assert not KernelClock(TIME_ERROR, 0, 0, 0, 0, 0, 0, 0).synced


def test_detector_follows_the_kernel_and_the_build_date() -> None:
    sim = SimClock(BUILD_DATE_NS + 86400 * S)
    kernel = SimKernel()
    det = SyncDetector("kernel", read_kernel=kernel.read, wall_ns=sim.wall, mono_ns=sim.boottime)
    assert not det()
    kernel.synced = True
    assert not det()  # cached for a second: asked once per sample, must stay cheap
    sim.tick(2 * S)
    assert det()
    sim.step(-400 * 86400 * S)  # synced kernel, but a date before this release: not trusted
    det.invalidate()
    assert not det()


def test_build_date_mode_ignores_the_kernel() -> None:
    sim = SimClock(STALE)
    kernel = SimKernel()
    det = SyncDetector("build_date", read_kernel=kernel.read, wall_ns=sim.wall, mono_ns=sim.boottime)
    assert not det()
    sim.step(BUILD_DATE_NS - STALE + S)
    det.invalidate()
    assert det()  # kernel still says unsynced; this mode does not ask it


def test_auto_falls_back_to_the_build_date_when_adjtimex_fails() -> None:
    def broken() -> KernelClock:
        raise OSError(38, "adjtimex: Function not implemented")

    sim = SimClock(BUILD_DATE_NS + S)
    assert SyncDetector("auto", read_kernel=broken, wall_ns=sim.wall, mono_ns=sim.boottime)()
    assert not SyncDetector("kernel", read_kernel=broken, wall_ns=sim.wall, mono_ns=sim.boottime)()
    assert SyncDetector("assume_synced", read_kernel=broken, wall_ns=lambda: 0)()


def test_clock_takes_the_detector() -> None:
    kernel = SimKernel()
    clock = Clock(synced=SyncDetector("kernel", read_kernel=kernel.read, floor_ns=0, cache_s=0))
    assert clock.flags() == FLAG_CLOCK_UNSYNCED
    kernel.synced = True
    assert clock.stamp()[1] == 0


def test_build_date_is_a_plausible_release_date() -> None:
    assert 1_767_225_600 * S <= BUILD_DATE_NS  # 2026-01-01: not an accidentally tiny floor
    assert BUILD_DATE_NS < 2_000_000_000 * S  # 2033: not an accidentally huge one either


@pytest.mark.integration
def test_adjtimex_struct_matches_the_c_library(tmp_path: Path) -> None:
    """Our ctypes `struct timex` must read the same fields as C code compiled against <sys/timex.h>."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed to cross-check the adjtimex struct layout (apt-get install gcc)"
    src = tmp_path / "tx.c"
    src.write_text(
        "#include <stdio.h>\n#include <sys/timex.h>\n"
        "int main(void){struct timex t={0};int r=adjtimex(&t);"
        'printf("%d %d %ld %ld %ld %ld\\n",r,t.status,t.tick,t.tolerance,t.constant,t.precision);'
        "return r<0;}\n"
    )
    exe = tmp_path / "tx"
    subprocess.run([cc, "-o", str(exe), str(src)], check=True, timeout=120)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True, timeout=30).stdout.split()
    k = read_kernel_clock()
    assert [int(v) for v in out] == [k.state, k.status, k.tick_us, k.tolerance, k.constant, k.precision_us]
    assert k.synced == (not int(out[1]) & STA_UNSYNC and int(out[0]) != TIME_ERROR)


def test_boot_id_is_the_kernels() -> None:
    boot_id = read_boot_id()
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", boot_id)
    other = subprocess.run(
        [sys.executable, "-c", "from edgecollect.timesync import read_boot_id; print(read_boot_id())"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip()
    assert other == boot_id  # same boot, same id, whichever process asks
    assert read_boot_id(Path("/nonexistent/boot_id")) == ""


# -- the watcher ----------------------------------------------------------------------------------


def watcher(sim: SimClock, kernel: SimKernel) -> ClockWatcher:
    det = SyncDetector("kernel", read_kernel=kernel.read, floor_ns=0, cache_s=0, mono_ns=sim.boottime)
    return ClockWatcher(det, boot_id=BOOT, wall_ns=sim.wall, boot_ns=sim.boottime)


def test_watcher_reports_the_ntp_step() -> None:
    sim, kernel = SimClock(STALE), SimKernel()
    w = watcher(sim, kernel)
    sim.tick(S)
    assert w.poll() is None
    sim.tick(S)
    old_now = sim.wall()
    sim.step(MONTHS)
    kernel.synced = True
    step = w.poll()
    assert step == ClockStep(MONTHS, old_now, BOOT, True, sim.wall())
    sim.tick(S)
    assert w.poll() is None  # reported once


def test_slewing_never_adds_up_to_a_step() -> None:
    sim, kernel = SimClock(STALE), SimKernel()
    w = watcher(sim, kernel)
    for _ in range(100):
        sim.tick(S)
        sim.step(S // 20)  # 50 ms per poll: far more than NTP slews, still not a step
        assert w.poll() is None


def test_sync_without_a_step_confirms_pre_sync_rows() -> None:
    sim, kernel = SimClock(STALE), SimKernel()
    w = watcher(sim, kernel)
    sim.tick(S)
    kernel.synced = True
    step = w.poll()
    assert step is not None and step.delta_ns == 0 and step.synced
    assert step.before_ns == sim.wall()


def test_step_while_unsynced_moves_without_marking() -> None:
    sim, kernel = SimClock(STALE), SimKernel()
    w = watcher(sim, kernel)
    sim.tick(S)
    sim.step(3600 * S)  # fake-hwclock restoring a saved date: better, still not synchronised
    step = w.poll()
    assert step is not None and not step.synced and step.delta_ns == 3600 * S


# -- repair ---------------------------------------------------------------------------------------


def test_repair_moves_only_unsynced_unrepaired_rows_before_the_step() -> None:
    times = [10, 20, 30, 40]
    flags = [FLAG_CLOCK_UNSYNCED | FLAG_INT, 0, FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED, FLAG_CLOCK_UNSYNCED]
    assert repair_columns(times, flags, 1000, before_ns=35) == 1
    assert times == [1010, 20, 30, 40]
    assert flags[0] == FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED | FLAG_INT
    assert flags[3] == FLAG_CLOCK_UNSYNCED


def test_simulated_boot_at_a_stale_date_then_ntp_step() -> None:
    """The whole story: samples buffered and spooled before sync end up at their true times."""
    sim, kernel = SimClock(STALE), SimKernel()
    det = SyncDetector("kernel", read_kernel=kernel.read, floor_ns=0, cache_s=0, mono_ns=sim.boottime)
    w = ClockWatcher(det, boot_id=BOOT, wall_ns=sim.wall, boot_ns=sim.boottime)
    registry = SeriesRegistry()
    temp = registry.intern(Series("hw.temperature", "Cel", "gauge", attrs(device="t1")))
    count = registry.intern(Series("edgecollect.mqtt.messages", "1", "cumulative", attrs()), sim.wall())
    ring, _ = make_ring()
    true_times: list[int] = []

    def sample(value: float) -> None:
        flags = 0 if det() else FLAG_CLOCK_UNSYNCED
        ring.append(temp, sim.wall(), value, flags)
        ring.append(count, sim.wall(), int(value), flags)
        true_times.append(sim.wall() + (0 if kernel.synced else MONTHS))

    # Before sync: one batch reaches the spool, more samples stay in the ring.
    for i in range(3):
        sim.tick(10 * S)
        sample(20.0 + i)
        assert w.poll() is None
    spooled = to_ipc(build_metrics(merge([ring.drain()]), registry, Resource(), BOOT))
    old_boot = to_ipc(build_metrics(merge([_one_row(registry, temp)]), registry, Resource(), "older-boot"))
    for i in range(2):
        sim.tick(10 * S)
        sample(30.0 + i)
    # NTP steps the clock by three months; a sample is taken on the new clock before the daemon
    # clears STA_UNSYNC (so it is flagged, but its time is right); then the watcher polls.
    sim.tick(S)
    sim.step(MONTHS)
    ring.append(temp, sim.wall(), 40.0, FLAG_CLOCK_UNSYNCED)
    after_step = sim.wall()
    kernel.synced = True
    sim.tick(S // 10)
    step = w.poll()
    assert step is not None and step.delta_ns == MONTHS and step.synced
    sample(41.0)  # synced now: not flagged

    drained = ring.drain()
    assert repair_drained(drained, step) == 4  # the two pre-step samples of each series
    assert list(drained.times_ns[:4]) == [true_times[3]] * 2 + [true_times[4]] * 2
    assert all(f & FLAG_TIME_REPAIRED for f in drained.flags[:4])
    assert drained.times_ns[4] == after_step  # new clock: not moved, but confirmed
    assert drained.flags[4] == FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED
    assert list(drained.times_ns[5:]) == [true_times[5]] * 2
    assert list(drained.flags[5:]) == [0, FLAG_INT]

    repaired = repair_spool_batch(spooled, step.delta_ns, step.boot_id, before_ns=step.before_ns)
    batch = from_ipc(repaired)
    times = batch.column("time_unix_nano").cast(pa.int64()).to_pylist()
    by_series = sorted(true_times[:3] * 2)
    assert sorted(times) == by_series
    assert batch.column("flags").to_pylist() == [FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED] * 6
    starts = [s for s in batch.column("start_time_unix_nano").cast(pa.int64()).to_pylist() if s is not None]
    assert starts == [STALE + MONTHS] * 3  # the counter's start was on the stale clock too
    assert batch.schema.metadata == from_ipc(spooled).schema.metadata
    assert batch.column("double_value").to_pylist() == from_ipc(spooled).column("double_value").to_pylist()

    # A batch from an earlier boot cannot be tied to this boot's clock: left as it was.
    assert repair_spool_batch(old_boot, step.delta_ns, step.boot_id, before_ns=step.before_ns) is old_boot
    # Repair is idempotent: a batch already repaired (agent restarted mid-rewrite) does not move twice.
    assert repair_spool_batch(repaired, step.delta_ns, step.boot_id, before_ns=step.before_ns) is repaired


def _one_row(registry: SeriesRegistry, sid: int) -> Drained:
    ring, _ = make_ring()
    ring.append(sid, STALE, 1.5, FLAG_CLOCK_UNSYNCED)
    return ring.drain()


def test_repairs_spooled_logs() -> None:
    records = [LogRecord(STALE + i * S, f"line {i}") for i in range(3)]
    ipc = to_ipc(build_logs(records, Resource(), BOOT, flags=FLAG_CLOCK_UNSYNCED))
    out = from_ipc(repair_spool_batch(ipc, MONTHS, BOOT))
    assert out.column("time_unix_nano").cast(pa.int64()).to_pylist() == [r.time_ns + MONTHS for r in records]
    assert out.column("flags").to_pylist() == [FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED] * 3
    assert out.column("body_str").to_pylist() == ["line 0", "line 1", "line 2"]


def test_unsynced_step_moves_spooled_rows_but_leaves_them_unrepaired() -> None:
    records = [LogRecord(STALE, "x")]
    ipc = to_ipc(build_logs(records, Resource(), BOOT, flags=FLAG_CLOCK_UNSYNCED))
    out = from_ipc(repair_spool_batch(ipc, 3600 * S, BOOT, mark=False))
    assert out.column("time_unix_nano").cast(pa.int64()).to_pylist() == [STALE + 3600 * S]
    assert out.column("flags").to_pylist() == [FLAG_CLOCK_UNSYNCED]


@pytest.mark.integration
def test_watcher_on_the_real_clocks_sees_no_step() -> None:
    """Against the host's real clocks (no step happens during a test run): no false alarm."""
    w = ClockWatcher(SyncDetector("assume_synced"))
    done = threading.Event()
    for _ in range(20):
        done.wait(0.01)
        assert w.poll() is None
    assert w.boot_id == read_boot_id()
