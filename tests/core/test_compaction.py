"""Spool compaction on a real spool: few files, every point kept in order per series, a crash at each
step of a merge loses nothing, and the byte cap holds."""

from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest

from edgecollect.batch import Rows, build_metrics, from_ipc, to_ipc
from edgecollect.compaction import CompactionConfig, Compactor, tier
from edgecollect.model import Resource, Series, SeriesRegistry, attrs
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry

RESOURCE = Resource(attrs({"host.name": "t"}))
SERIES = 7


class Feeder:
    """Cuts like the batcher: every `cut()` is one tick of SERIES series, one point each."""

    def __init__(self) -> None:
        self.registry = SeriesRegistry()
        self.sids = [self.registry.intern(Series(f"m{i % 3}", "1", "gauge", attrs({"i": str(i)})))
                     for i in range(SERIES)]
        self.tick = 0

    def cut(self, spool: Spool, ticks: int = 1) -> None:
        sids, times, floats, ints, flags = [], [], [], [], []
        for _ in range(ticks):
            self.tick += 1
            for sid in self.sids:
                sids.append(sid)
                times.append(self.tick * 10_000_000_000)
                floats.append(0.0)
                ints.append(self.tick)
                flags.append(0x80)
        batch = build_metrics(Rows(sids, times, floats, ints, flags), self.registry, RESOURCE, "boot")
        assert spool.append("metrics", to_ipc(batch), batch.num_rows) is not None


def series_in_spool_order(spool: Spool) -> dict[str, list[int]]:
    """Each series' times, reading the spool's files in the order the forwarder sends them."""
    out: dict[str, list[int]] = collections.defaultdict(list)
    for b in spool.list("metrics"):
        payload = spool.read(b.id)
        assert payload is not None
        batch = from_ipc(payload)
        names, keys = batch.column("name").to_pylist(), batch.column("attributes").to_pylist()
        for name, key, t in zip(names, keys, batch.column("time_unix_nano").cast("int64").to_pylist(), strict=True):
            out[f"{name}{key}"].append(t)
    return out


def make_spool(path: Path, telemetry: Telemetry, max_size: int = 256 * 1024**2) -> Spool:
    spool = Spool(path, telemetry, max_size=max_size)
    spool.open()
    return spool


def test_tiers() -> None:
    assert [tier(p, 100_000) for p in (7, 390, 6_249, 6_250, 74_999, 75_000)] == [0, 1, 1, 2, 2, 3]


def test_a_day_of_small_cuts_becomes_a_few_files_and_keeps_every_point_in_order(tmp_path: Path) -> None:
    telemetry = Telemetry()
    spool = make_spool(tmp_path / "spool", telemetry)
    # Scaled down (max_points 4,096 instead of 100,000) so the test walks every tier quickly.
    compactor = Compactor(spool, telemetry, CompactionConfig(max_points=4096, fanout=4))
    feeder = Feeder()
    most_small = 0
    for _ in range(600):
        feeder.cut(spool)
        compactor.run()
        most_small = max(most_small, sum(1 for b in spool.list() if tier(b.points, 4096) == 0))
    assert most_small <= 4, "no more than fanout small files wait at any moment"
    files = spool.list()
    assert len(files) < 20, f"{len(files)} files for 600 cuts"
    assert spool.stats().points == 600 * SERIES
    times = series_in_spool_order(spool)
    assert len(times) == SERIES
    for series, ts in times.items():
        assert ts == [t * 10_000_000_000 for t in range(1, 601)], f"{series}: lost or reordered"
    merges = telemetry.find("edgecollect.spool.merges")
    assert merges is not None and merges.snapshot().get("ok", 0) > 0


def test_small_files_older_than_max_wait_are_merged_without_waiting_for_the_count(tmp_path: Path) -> None:
    telemetry = Telemetry()
    spool = make_spool(tmp_path / "spool", telemetry)
    compactor = Compactor(spool, telemetry, CompactionConfig(max_points=100_000, max_wait_s=60.0))
    feeder = Feeder()
    for _ in range(3):
        feeder.cut(spool)
    assert compactor.run() == 0
    oldest = spool.list()[0].created_ns
    assert compactor.run(now_ns=oldest + 61 * 10**9) == 1
    assert len(spool.list()) == 1 and spool.stats().points == 3 * SERIES


def test_a_merge_never_reaches_across_a_file_of_another_tier(tmp_path: Path) -> None:
    telemetry = Telemetry()
    spool = make_spool(tmp_path / "spool", telemetry)
    compactor = Compactor(spool, telemetry, CompactionConfig(max_points=4096, fanout=3))
    feeder = Feeder()
    feeder.cut(spool)
    feeder.cut(spool, ticks=40)  # 280 points: tier 1 between two tier-0 files
    feeder.cut(spool)
    feeder.cut(spool)
    assert compactor.run() == 1
    assert [b.points for b in spool.list()] == [SERIES, 40 * SERIES, 2 * SERIES]
    for ts in series_in_spool_order(spool).values():
        assert ts == sorted(ts)


@pytest.mark.parametrize("crash_at", ["write", "rename", "dir_fsync", "delete_parts"])
def test_a_crash_at_any_step_of_a_merge_loses_nothing(tmp_path: Path, crash_at: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry = Telemetry()
    directory = tmp_path / "spool"
    spool = make_spool(directory, telemetry)
    compactor = Compactor(spool, telemetry, CompactionConfig(max_points=4096, fanout=4))
    feeder = Feeder()
    for _ in range(4):
        feeder.cut(spool)
    before = series_in_spool_order(spool)

    class Crash(BaseException):
        """kill -9 stand-in: nothing after it runs, nothing is cleaned up."""

    import edgecollect.spoolfile as spoolfile  # the compactor writes through it (spool.py too)

    real_write = spoolfile.write_synced
    if crash_at == "write":
        def torn(path: Path, data: bytes) -> None:
            path.write_bytes(data[: len(data) // 2])  # a torn temp file, never fsync'd whole
            raise Crash
        monkeypatch.setattr(spoolfile, "write_synced", torn)
    elif crash_at == "rename":
        def written_then_crash(path: Path, data: bytes) -> None:
            real_write(path, data)
            raise Crash
        monkeypatch.setattr(spoolfile, "write_synced", written_then_crash)
    elif crash_at == "dir_fsync":
        def crash_dir(path: Path) -> None:
            raise Crash
        monkeypatch.setattr(spoolfile, "fsync_dir", crash_dir)
    else:
        def crash_merged(*args: object) -> None:
            raise Crash
        monkeypatch.setattr(spool, "merged", crash_merged)
    with pytest.raises(Crash):
        compactor.run()
    monkeypatch.undo()

    # Restart: a fresh spool on the same directory recovers whatever the crash left.
    again = make_spool(directory, Telemetry())
    after = series_in_spool_order(again)
    for series, times in before.items():
        assert set(times) <= set(after[series]), f"{crash_at}: points of {series} lost"
        assert after[series] == sorted(after[series]) or len(after[series]) > len(times), "order, bar duplicates"
    assert not list(directory.glob(".*.tmp")), "recovery leaves no temp file behind"
    Compactor(again, Telemetry(), CompactionConfig(max_points=4096, fanout=4)).run()


def test_a_merge_that_would_break_the_byte_cap_is_skipped(tmp_path: Path) -> None:
    telemetry = Telemetry()
    feeder = Feeder()
    probe = make_spool(tmp_path / "probe", Telemetry())
    for _ in range(4):
        feeder.cut(probe)
    cap = probe.stats().bytes + 200  # room for the parts, not for a merged copy beside them
    spool = make_spool(tmp_path / "spool", telemetry, max_size=cap)
    feeder = Feeder()
    for _ in range(4):
        feeder.cut(spool)
    assert Compactor(spool, telemetry, CompactionConfig(max_points=4096, fanout=4)).run() == 0
    assert len(spool.list()) == 4 and spool.stats().bytes <= cap
    merges = telemetry.find("edgecollect.spool.merges")
    assert merges is not None and merges.snapshot() == {"no_room": 1}
    assert os.listdir(tmp_path / "spool").count("quarantine") == 1
