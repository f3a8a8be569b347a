"""`[spool] when_full = "downsample"`: a week offline into a spool that holds about a day raw."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from edgecollect import spooltool
from edgecollect.batch import TS, from_ipc, to_ipc
from edgecollect.downsample import coarsen, encode
from edgecollect.spool import OVERHEAD, Spool
from edgecollect.telemetry import Telemetry

HOUR = 3600
T0 = 1_800_000_000 - 1_800_000_000 % 86400  # midnight UTC
NS = 1_000_000_000
META = {b"edgecollect.format": b"metrics/1", b"edgecollect.resource": b"{}", b"edgecollect.boot_id": b"b"}


def hour_batch(hour: int) -> tuple[bytes, int]:
    """One hour at 1 s of two gauges and a counter, as the batcher would spool it."""
    start = T0 + hour * HOUR
    secs = range(start, start + HOUR)
    n = HOUR
    table = pa.table(
        {
            "name": ["temp"] * n + ["hum"] * n + ["energy"] * n,
            "unit": ["Cel"] * n + ["%"] * n + ["J"] * n,
            "kind": ["gauge"] * n + ["gauge"] * n + ["cumulative"] * n,
            "attributes": ['{"device.id":"s1"}'] * (3 * n),
            "start_time_unix_nano": pa.array([None] * (2 * n) + [T0 * NS] * n, pa.int64()).cast(TS),
            "time_unix_nano": pa.array([s * NS for s in secs] * 3, pa.int64()).cast(TS),
            "double_value": pa.array(
                [20 + (s % 900) / 100 for s in secs] + [50 + (s % 77) / 10 for s in secs] + [None] * n, pa.float64()
            ),
            "int_value": pa.array([None] * (2 * n) + [(s - T0) * 3 for s in secs], pa.int64()),
            "flags": pa.array([0] * (3 * n), pa.uint8()),
        }
    )
    return to_ipc(encode(table, META)), 3 * n


def test_coarsen_exact_on_a_known_window() -> None:
    table = pa.table(
        {
            "name": ["p", "p", "p", "c", "c", "d", "d"],
            "unit": ["W"] * 5 + ["1", "1"],
            "kind": ["gauge"] * 3 + ["cumulative"] * 2 + ["delta"] * 2,
            "attributes": ["{}"] * 7,
            "start_time_unix_nano": pa.array([None] * 3 + [5 * NS] * 2 + [None] * 2, pa.int64()).cast(TS),
            "time_unix_nano": pa.array(
                [t * NS for t in (T0, T0 + 299, T0 + 300, T0 + 10, T0 + 20, T0 + 1, T0 + 2)], pa.int64()
            ).cast(TS),
            "double_value": [1.0, 3.0, 7.0, None, None, None, None],
            "int_value": pa.array([None, None, None, 10, 12, 1, 2], pa.int64()),
            "flags": pa.array([0, 1, 0, 0, 0, 0, 2], pa.uint8()),
        }
    )
    rows = coarsen(table, 300 * NS).to_pylist()
    got = sorted(
        (
            r["name"],
            r["start_time_unix_nano"].timestamp() - T0,
            r["time_unix_nano"].timestamp() - T0,
            r["double_value"],
            r["int_value"],
            r["flags"],
        )
        for r in rows
    )
    assert got == sorted(
        [
            ("p.min", 0, 300, 1.0, None, 1),
            ("p.max", 0, 300, 3.0, None, 1),
            ("p.mean", 0, 300, 2.0, None, 1),
            ("p.last", 0, 300, 3.0, None, 1),
            ("p.count", 0, 300, None, 2, 1),
            ("p.min", 300, 600, 7.0, None, 0),
            ("p.max", 300, 600, 7.0, None, 0),
            ("p.mean", 300, 600, 7.0, None, 0),
            ("p.last", 300, 600, 7.0, None, 0),
            ("p.count", 300, 600, None, 1, 0),
            ("c", 5 - T0, 300, 12.0, None, 0),  # a counter keeps its own start and its last value
            ("d", 0, 300, 3.0, None, 2),  # a delta sum sums
        ]
    )


def test_a_week_offline_keeps_every_hour_coarsened_and_the_last_day_raw(tmp_path: Path) -> None:
    day = [hour_batch(h) for h in range(24)]
    raw_day_bytes = sum(OVERHEAD + len(payload) for payload, _ in day)
    cap = int(raw_day_bytes * 1.3)
    directory = tmp_path / "spool"
    telemetry = Telemetry()
    spool = Spool(directory, telemetry, max_size=cap, when_full="downsample", downsample_window_s=300.0)
    spool.open()
    for hour in range(7 * 24):
        payload, points = hour_batch(hour)
        assert spool.append("metrics", payload, points) is not None
        on_disk = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
        assert on_disk <= cap and spool.stats().bytes <= cap, (hour, on_disk, cap)

    dropped = telemetry.find("edgecollect.spool.points_dropped")
    assert dropped is not None and dropped.total() == 0
    downsampled = telemetry.find("edgecollect.spool.downsampled_batches")
    assert downsampled is not None and downsampled.total() > 0

    raw_per_hour: dict[int, int] = {}
    coarse_hours: set[int] = set()
    for batch in spool.list():
        payload = spool.read(batch.id)
        assert payload is not None
        for row in from_ipc(payload).select(["name", "time_unix_nano"]).to_pylist():
            hour = (int(row["time_unix_nano"].timestamp()) - 1 - T0) // HOUR
            if row["name"] == "temp":
                raw_per_hour[hour] = raw_per_hour.get(hour, 0) + 1
            elif row["name"] == "temp.mean":
                coarse_hours.add(hour)
    raw_hours = {h for h, n in raw_per_hour.items() if n >= HOUR - 1}
    assert set(range(7 * 24 - 24, 7 * 24)) <= raw_hours  # the most recent day, raw
    assert coarse_hours | raw_hours == set(range(7 * 24))  # every hour of the week
    assert set(range(5 * 24)) <= coarse_hours  # the older days were coarsened, not dropped

    out = io.StringIO()
    spooltool.ls(directory, out)
    assert "downsampled 5m, " in out.getvalue()
    target = tmp_path / "week.parquet"
    assert spooltool.export(directory, "parquet", target, "metrics", io.StringIO()) == 0
    exported = pq.read_table(target)
    assert exported.num_rows == spool.stats().points
    assert {"temp", "temp.mean", "temp.count", "energy"} <= set(exported["name"].to_pylist())


def test_reopened_spool_still_knows_its_downsampled_batches(tmp_path: Path) -> None:
    payload, points = hour_batch(0)
    cap = int((OVERHEAD + len(payload)) * 2.5)
    spool = Spool(tmp_path / "s", Telemetry(), max_size=cap, when_full="downsample", downsample_window_s=300.0)
    spool.open()
    for hour in range(4):
        spool.append("metrics", *hour_batch(hour))
    again = Spool(tmp_path / "s", Telemetry(), max_size=cap, when_full="downsample", downsample_window_s=300.0)
    again.open()
    assert again.stats().points < 4 * points
    for hour in range(4, 8):
        assert again.append("metrics", *hour_batch(hour)) is not None
        assert again.stats().bytes <= cap


def test_a_batch_that_cannot_be_coarsened_is_counted_and_skipped_not_fatal(tmp_path: Path) -> None:
    payload, _ = hour_batch(0)
    cap = int((OVERHEAD + len(payload)) * 2.5)
    telemetry = Telemetry()
    spool = Spool(tmp_path / "s", telemetry, max_size=cap, when_full="downsample", downsample_window_s=300.0)
    spool.open()
    spool.append("metrics", b"not an arrow stream", 5)
    for hour in range(4):
        assert spool.append("metrics", *hour_batch(hour)) is not None
        assert spool.stats().bytes <= cap
    failures = telemetry.find("edgecollect.spool.downsample_failures")
    dropped = telemetry.find("edgecollect.spool.points_dropped")
    assert failures is not None and failures.total() == 1  # tried once, then left aside
    assert dropped is not None and dropped.total() == 0  # the good batches were coarsened instead
    assert spool.list()[0].points == 5  # the bad one waits to be dropped (or quarantined upstream)


CHILD = """
import os, signal, sys
from pathlib import Path
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.processors.test_downsample import hour_batch

directory, cap = Path(sys.argv[1]), int(sys.argv[2])
spool = Spool(directory, Telemetry(), max_size=cap, when_full="downsample", downsample_window_s=300.0)
spool.open()
def die(batch):  # the aggregate is on disk; kill -9 before the first original is deleted
    os.kill(os.getpid(), signal.SIGKILL)
spool.remove_locked = die
for hour in range(6):
    spool.append("metrics", *hour_batch(hour))
"""


def test_kill_9_between_writing_the_aggregate_and_deleting_the_originals_loses_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    payload, _ = hour_batch(0)
    cap = int((OVERHEAD + len(payload)) * 2.5)
    directory = tmp_path / "spool"
    child = subprocess.run([sys.executable, "-c", CHILD, str(directory), str(cap)], check=False)
    assert child.returncode == -9
    spool = Spool(directory, Telemetry(), max_size=cap * 2, when_full="downsample", downsample_window_s=300.0)
    spool.open()
    names: dict[str, int] = {}
    for batch in spool.list():
        data = spool.read(batch.id)
        assert data is not None
        for name in from_ipc(data).column("name").to_pylist():
            names[name] = names.get(name, 0) + 1
    # Both hours written before the kill are still there raw, and their aggregate too (duplicates,
    # never loss): the originals were to be deleted only after the aggregate was durable.
    assert names["temp"] == 2 * HOUR
    assert names["temp.count"] == 12  # one hour's worth of 5-minute windows was coarsened
    assert names["energy"] == 2 * HOUR + 12  # a counter keeps its name: raw rows and one per window
