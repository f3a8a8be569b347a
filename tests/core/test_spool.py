from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from edgecollect.batch import from_ipc
from edgecollect.spool import OVERHEAD, Spool
from edgecollect.telemetry import Telemetry
from tests.core.batches import metrics_ipc


def open_spool(directory: Path, telemetry: Telemetry, **kwargs: object) -> Spool:
    spool = Spool(directory, telemetry, **kwargs)  # type: ignore[arg-type]
    spool.open()
    return spool


def test_append_read_ack_round_trip(tmp_path: Path, telemetry: Telemetry) -> None:
    spool = open_spool(tmp_path, telemetry)
    payload = metrics_ipc(300)
    batch_id = spool.append("metrics", payload, 300)
    assert batch_id is not None
    assert spool.read(batch_id) == payload
    assert from_ipc(spool.read(batch_id) or b"").num_rows == 300
    assert [b.id for b in spool.oldest(10)] == [batch_id]
    spool.ack(batch_id)
    assert spool.list() == [] and list(tmp_path.glob("*.ecb")) == []


def test_order_survives_restart_and_new_ids_continue(tmp_path: Path, telemetry: Telemetry) -> None:
    spool = open_spool(tmp_path, telemetry)
    ids = [spool.append("metrics", metrics_ipc(10, seed=i), 10) for i in range(5)]
    again = open_spool(tmp_path, Telemetry())
    assert [b.id for b in again.list()] == ids
    new_id = again.append("logs", metrics_ipc(10), 10)
    assert new_id is not None and new_id > max(i for i in ids if i is not None)


def test_quarantines_truncated_bit_flipped_and_garbage_files_and_starts(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, Telemetry())
    good = [spool.append("metrics", metrics_ipc(100, seed=i), 100) for i in range(6)]
    files = sorted(tmp_path.glob("*.ecb"))
    truncated, flipped = files[1], files[3]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x10
    flipped.write_bytes(bytes(data))
    (tmp_path / "00000000000000ff.ecb").write_bytes(os.urandom(5000))
    (tmp_path / ".0000000000000100.tmp").write_bytes(b"half a write")

    telemetry = Telemetry()
    restarted = open_spool(tmp_path, telemetry)

    quarantined = telemetry.find("edgecollect.spool.quarantined")
    assert quarantined is not None and quarantined.total() == 3
    assert quarantined.snapshot() == {"truncated": 1, "bad_checksum": 1, "bad_magic": 1}
    assert len(list((tmp_path / "quarantine").iterdir())) == 3
    survivors = [good[i] for i in (0, 2, 4, 5)]
    assert [b.id for b in restarted.list()] == survivors
    for batch_id in survivors:
        assert from_ipc(restarted.read(batch_id) or b"").num_rows == 100
    assert telemetry.find("edgecollect.spool.incomplete_removed").total() == 1  # type: ignore[union-attr]


def test_read_of_file_damaged_after_start_quarantines_it(tmp_path: Path, telemetry: Telemetry) -> None:
    spool = open_spool(tmp_path, telemetry)
    batch_id = spool.append("metrics", metrics_ipc(50), 50)
    assert batch_id is not None
    path = next(tmp_path.glob("*.ecb"))
    path.write_bytes(path.read_bytes()[:-10])
    assert spool.read(batch_id) is None
    assert spool.list() == []
    assert telemetry.find("edgecollect.spool.quarantined").value("truncated") == 1  # type: ignore[union-attr]


def _disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.ecb"))


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_byte_cap_holds_and_drop_counter_equals_what_was_dropped(tmp_path: Path, policy: str) -> None:
    telemetry = Telemetry()
    cap = 1024 * 1024
    spool = open_spool(tmp_path, telemetry, max_size=cap, when_full=policy)
    written: list[int] = []
    refused_points = 0
    largest = 0
    rnd = random.Random(7)
    for i in range(400):  # a fast synthetic source: ~8x the cap
        points = rnd.randint(200, 3000)
        payload = metrics_ipc(points, seed=i)
        largest = max(largest, len(payload) + OVERHEAD)
        batch_id = spool.append("metrics", payload, points)
        if batch_id is None:
            refused_points += points
        else:
            written.append(batch_id)
        assert _disk_bytes(tmp_path) <= cap + largest
        assert spool.stats().bytes == _disk_bytes(tmp_path)
    kept = [b.id for b in spool.list()]
    dropped_batches = telemetry.find("edgecollect.spool.batches_dropped")
    dropped_points = telemetry.find("edgecollect.spool.points_dropped")
    assert dropped_batches is not None and dropped_points is not None
    if policy == "drop_oldest":
        # The oldest went first: what is left is exactly the newest suffix of what was written.
        assert kept == written[-len(kept) :]
        assert dropped_batches.value("drop_oldest") == len(written) - len(kept)
    else:
        assert kept == written  # nothing written is ever evicted; new batches were refused
        assert dropped_points.value("drop_newest") == refused_points
    assert dropped_batches.total() == 400 - len(kept)


def test_max_age_expires_old_batches_at_start(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, Telemetry())
    spool.append("metrics", metrics_ipc(10), 10)
    telemetry = Telemetry()
    expired = Spool(tmp_path, telemetry, max_age_s=0.0)
    expired.open()
    assert expired.list() == []
    assert telemetry.find("edgecollect.spool.points_dropped").value("max_age") == 10  # type: ignore[union-attr]


def test_batch_larger_than_cap_is_refused_and_counted(tmp_path: Path, telemetry: Telemetry) -> None:
    spool = open_spool(tmp_path, telemetry, max_size=8192)
    assert spool.append("metrics", os.urandom(9000), 5) is None
    assert telemetry.find("edgecollect.spool.points_dropped").value("too_large") == 5  # type: ignore[union-attr]


def test_complete_temp_file_is_promoted_and_a_torn_one_removed(tmp_path: Path) -> None:
    from edgecollect.spool import frame

    payload = metrics_ipc(40)
    # A power cut after the fsync but before the rename reached the disk: the batch was acked.
    (tmp_path / f".{7:016x}.tmp").write_bytes(frame(7, "metrics", time.time_ns(), 40, payload))
    # One cut mid-write: never acked.
    (tmp_path / f".{8:016x}.tmp").write_bytes(frame(8, "metrics", time.time_ns(), 40, payload)[:-100])
    telemetry = Telemetry()
    spool = open_spool(tmp_path, telemetry)
    assert [b.id for b in spool.list()] == [7]
    assert spool.read(7) == payload
    assert telemetry.find("edgecollect.spool.temp_promoted").total() == 1  # type: ignore[union-attr]
    assert telemetry.find("edgecollect.spool.incomplete_removed").total() == 1  # type: ignore[union-attr]
    assert not list(tmp_path.glob(".*.tmp"))
    assert spool.append("metrics", payload, 40) == 8  # numbering continues after the promoted one


@pytest.mark.parametrize("sync", ["file", "file+dir"])
def test_both_sync_modes_write_readable_batches(tmp_path: Path, sync: str) -> None:
    spool = open_spool(tmp_path, Telemetry(), sync=sync)
    batch_id = spool.append("metrics", metrics_ipc(10), 10)
    assert batch_id is not None and from_ipc(open_spool(tmp_path, Telemetry()).read(batch_id) or b"").num_rows == 10


@pytest.mark.parametrize("policy", ["drop_oldest", "drop_newest"])
def test_a_lower_cap_applies_at_start_by_the_policy(tmp_path: Path, policy: str) -> None:
    spool = open_spool(tmp_path, Telemetry())
    ids = [spool.append("metrics", metrics_ipc(500, seed=i), 500) for i in range(20)]
    cap = spool.stats().bytes // 2
    telemetry = Telemetry()
    smaller = open_spool(tmp_path, telemetry, max_size=cap, when_full=policy)
    kept = [b.id for b in smaller.list()]
    assert _disk_bytes(tmp_path) <= cap and kept
    assert kept == (ids[-len(kept) :] if policy == "drop_oldest" else ids[: len(kept)])
    assert telemetry.find("edgecollect.spool.points_dropped").value(policy) == 500 * (20 - len(kept))  # type: ignore[union-attr]
