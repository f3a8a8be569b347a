"""A spool folder a careless or hostile local user has been at (issue 10, items 2, 3 and 7).

Only regular files are batches; header and size are checked before any read; a file larger than the
largest batch the spool can write is damaged; the quarantine is a real folder inside the spool and
its trim touches only the agent's own files; start-up lists each folder once and logs one summary.
Start-up runs in a child process under an address-space limit and a timeout, so a regression fails
here instead of blocking the test run or eating the machine's memory.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.core.batches import metrics_ipc
from tests.core.hostile import damaged_files, fingerprint, make_foreign, plant_hostile

REPO = Path(__file__).resolve().parents[2]
ADDRESS_SPACE = 1024**3  # far below the 4-6 GB a whole read of the planted files would need
NON_REGULAR = ("fifo", "link_dev_zero", "dir", "link_foreign_file", "link_foreign_dir", "fifo_temp",
               "link_valid_batch")


def open_in_child(spool: Path, max_size: int = 256 * 1024**2, timeout_s: float = 120) -> dict[str, object]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.core.spool_opener", str(spool), str(max_size)],
            cwd=REPO, capture_output=True, text=True, timeout=timeout_s, preexec_fn=limit,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"spool start-up did not finish within {timeout_s:.0f}s (blocked?)") from exc
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_giant_fifo_device_link_and_folder_entries_are_never_read_or_followed(tmp_path: Path) -> None:
    spool_dir = tmp_path / "state" / "spool"
    foreign = make_foreign(tmp_path / "foreign")
    good = Spool(spool_dir, Telemetry())
    good.open()
    valid = [good.append("metrics", metrics_ipc(50, seed=i), 50) for i in range(3)]
    kinds = plant_hostile(spool_dir, foreign)
    before = fingerprint(foreign)

    found = open_in_child(spool_dir)

    print(f"\nhostile spool start-up: {found}")
    assert found["batches"] == valid
    assert found["quarantined"] == {"bad_magic": 1, "too_large": 1, "not_regular": len(NON_REGULAR)}
    assert isinstance(found["vm_hwm_kib"], int) and found["vm_hwm_kib"] < 200 * 1024
    assert fingerprint(foreign) == before, "something outside the state_dir changed"
    # The non-regular entries were moved as themselves (links stay links), not opened.
    quarantined = {p.name.split("-", 2)[2]: p for p in (spool_dir / "quarantine").iterdir()}
    for entry, kind in kinds.items():
        assert not (spool_dir / entry).exists() and not (spool_dir / entry).is_symlink(), entry
        if kind.startswith("link"):
            assert quarantined[entry].is_symlink(), entry
        if kind.startswith("fifo"):
            assert not quarantined[entry].is_file(), entry
    assert sorted(p.name for p in spool_dir.iterdir()) == [f"{i:016x}.ecb" for i in valid] + ["quarantine"]


def test_a_batch_larger_than_the_cap_is_damaged_without_being_read(tmp_path: Path) -> None:
    spool = Spool(tmp_path, Telemetry())
    spool.open()
    big = spool.append("metrics", metrics_ipc(3000, seed=1), 3000)
    small = spool.append("metrics", metrics_ipc(10, seed=2), 10)
    assert big is not None and small is not None
    small_size = (tmp_path / f"{small:016x}.ecb").stat().st_size
    telemetry = Telemetry()
    capped = Spool(tmp_path, telemetry, max_size=small_size * 2)
    capped.open()
    assert [b.id for b in capped.list()] == [small]
    assert telemetry.find("edgecollect.spool.quarantined").snapshot() == {"too_large": 1}  # type: ignore[union-attr]


def test_a_symlinked_quarantine_is_replaced_and_its_target_left_alone(tmp_path: Path) -> None:
    spool_dir = tmp_path / "state" / "spool"
    spool_dir.mkdir(parents=True)
    foreign = make_foreign(tmp_path / "foreign")
    before = fingerprint(foreign)
    (spool_dir / "quarantine").symlink_to(foreign, target_is_directory=True)
    damaged_files(spool_dir, 20)

    telemetry = Telemetry()
    spool = Spool(spool_dir, telemetry, quarantine_max_size=600)  # a trim on every move
    spool.open()

    assert fingerprint(foreign) == before, "the quarantine link was followed"
    quarantine = spool_dir / "quarantine"
    assert quarantine.is_dir() and not quarantine.is_symlink()
    links = [p for p in quarantine.iterdir() if p.is_symlink()]
    assert len(links) == 1 and os.readlink(links[0]) == str(foreign)  # kept, as a link, inside
    counted = telemetry.find("edgecollect.spool.quarantined").snapshot()  # type: ignore[union-attr]
    assert counted == {"bad_magic": 18, "truncated": 2, "not_regular": 1}
    assert sum(p.lstat().st_size for p in quarantine.iterdir() if not p.is_symlink()) <= 600


def test_a_quarantine_that_is_a_file_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "quarantine").write_text("an operator's file")
    damaged_files(tmp_path, 3)
    spool = Spool(tmp_path, Telemetry())
    spool.open()
    quarantine = tmp_path / "quarantine"
    assert quarantine.is_dir()
    kept = [p for p in quarantine.iterdir() if p.name.endswith("-not_regular-quarantine")]
    assert len(kept) == 1 and kept[0].read_text() == "an operator's file"
    assert len(list(quarantine.iterdir())) == 4


def test_quarantine_trim_deletes_only_the_agents_own_regular_files(tmp_path: Path) -> None:
    foreign = make_foreign(tmp_path / "foreign")
    before = fingerprint(foreign)
    quarantine = tmp_path / "spool" / "quarantine"
    quarantine.mkdir(parents=True)
    (quarantine / "notes.txt").write_bytes(os.urandom(5000))  # someone else's, not our pattern
    # Our pattern, but a link: trimming must neither follow it nor count it.
    (quarantine / "1-bad_magic-0000000000000001.ecb").symlink_to(foreign / "precious.bin")
    damaged_files(tmp_path / "spool", 30)

    spool = Spool(tmp_path / "spool", Telemetry(), quarantine_max_size=1000)
    spool.open()

    assert (quarantine / "notes.txt").stat().st_size == 5000
    assert (quarantine / "1-bad_magic-0000000000000001.ecb").is_symlink()
    assert fingerprint(foreign) == before
    ours = [p for p in quarantine.iterdir() if p.name.endswith(".ecb") and not p.is_symlink()]
    assert ours and sum(p.stat().st_size for p in ours) <= 1000


def test_a_quarantine_swapped_for_a_link_while_running_is_not_followed(tmp_path: Path) -> None:
    foreign = make_foreign(tmp_path / "foreign")
    before = fingerprint(foreign)
    spool = Spool(tmp_path / "spool", Telemetry(), quarantine_max_size=100)
    spool.open()
    batch_id = spool.append("metrics", metrics_ipc(20), 20)
    assert batch_id is not None
    (tmp_path / "spool" / "quarantine").rmdir()
    (tmp_path / "spool" / "quarantine").symlink_to(foreign, target_is_directory=True)
    spool.quarantine(batch_id, "bad_arrow")
    assert fingerprint(foreign) == before
    assert (tmp_path / "spool" / "quarantine").is_dir() and not (tmp_path / "spool" / "quarantine").is_symlink()


N_DAMAGED = int(os.environ.get("EDGECOLLECT_DAMAGED_FILES", "10000"))


def test_start_up_is_linear_and_logs_one_line_for_ten_thousand_damaged_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    reasons = damaged_files(tmp_path, N_DAMAGED)
    listings = 0
    real_scandir, real_listdir = os.scandir, os.listdir

    def counting_scandir(*args: object) -> object:
        nonlocal listings
        listings += 1
        return real_scandir(*args)  # type: ignore[call-overload]

    def counting_listdir(*args: object) -> object:
        nonlocal listings
        listings += 1
        return real_listdir(*args)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", counting_scandir)
    monkeypatch.setattr(os, "listdir", counting_listdir)
    telemetry = Telemetry()
    spool = Spool(tmp_path, telemetry)
    caplog.set_level(logging.INFO)
    started = time.perf_counter()
    spool.open()
    elapsed = time.perf_counter() - started
    monkeypatch.undo()

    print(f"\nstart-up with {N_DAMAGED} damaged files: {elapsed:.2f}s, {listings} folder listings")
    assert telemetry.find("edgecollect.spool.quarantined").snapshot() == reasons  # type: ignore[union-attr]
    assert listings <= 2, f"{listings} folder listings for {N_DAMAGED} files: start-up is not linear"
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    expected = f"quarantined {N_DAMAGED} damaged spool files: bad_magic={reasons['bad_magic']} " \
               f"truncated={reasons['truncated']}"
    assert len(warnings) == 1 and expected in warnings[0], warnings[:3]


def test_a_lowered_cap_logs_one_summary_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, Telemetry())
    spool.open()
    for i in range(60):
        spool.append("metrics", metrics_ipc(20, seed=i), 20)
    caplog.set_level(logging.INFO)
    telemetry = Telemetry()
    smaller = Spool(tmp_path, telemetry, max_size=spool.stats().bytes // 4)
    smaller.open()
    dropped = telemetry.find("edgecollect.spool.batches_dropped").value("drop_oldest")  # type: ignore[union-attr]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert dropped >= 40
    assert len(warnings) == 1 and f"dropped {dropped} batch(es)" in warnings[0], warnings[:3]


def test_spool_ls_reports_hostile_entries_as_damaged_without_reading_or_moving_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    foreign = make_foreign(tmp_path / "foreign")
    good = Spool(state / "spool", Telemetry())
    good.open()
    valid = [good.append("metrics", metrics_ipc(50, seed=i), 50) for i in range(2)]
    kinds = plant_hostile(state / "spool", foreign)
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n', encoding="utf-8")
    before_state, before_foreign = fingerprint(state), fingerprint(foreign)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    try:
        done = subprocess.run([sys.executable, "-m", "edgecollect", "spool", "ls", "-c", str(config)], cwd=REPO,
                              capture_output=True, text=True, timeout=120, preexec_fn=limit)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("spool ls blocked") from exc

    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for entry in kinds:
        if entry.endswith(".ecb"):
            assert any(entry in line and "DAMAGED" in line for line in lines), (entry, done.stdout)
    for batch_id in valid:
        assert any(line.split()[:2] == [str(batch_id), "metrics"] for line in lines), done.stdout
    assert fingerprint(state) == before_state and fingerprint(foreign) == before_foreign


def test_a_file_over_the_quarantine_cap_goes_alone_and_keeps_the_others(tmp_path: Path) -> None:
    damaged_files(tmp_path, 20)
    with open(tmp_path / f"{0xFFFFFF:016x}.ecb", "wb") as fh:  # sorts (and is quarantined) last
        fh.truncate(1024**2)
    spool = Spool(tmp_path, Telemetry(), quarantine_max_size=10_000)
    spool.open()
    kept = sorted(p.name.split("-", 2)[2] for p in (tmp_path / "quarantine").iterdir())
    assert len(kept) == 20 and f"{0xFFFFFF:016x}.ecb" not in kept


def test_a_promoted_temp_replaces_a_fifo_at_its_final_name(tmp_path: Path) -> None:
    from edgecollect.spool import frame

    payload = metrics_ipc(10)
    (tmp_path / f".{7:016x}.tmp").write_bytes(frame(7, "metrics", time.time_ns(), 10, payload))
    os.mkfifo(tmp_path / f"{7:016x}.ecb")
    spool = Spool(tmp_path, Telemetry())
    spool.open()
    assert [b.id for b in spool.list()] == [7] and spool.read(7) == payload
