"""The README's first command, for real: a fresh venv, `pip install .`, `edgecollect run`."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import venv
from pathlib import Path

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment (no system site-packages) with edgecollect pip-installed."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    pip = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)],
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return env_dir / "bin"


@pytest.mark.integration
def test_run_on_defaults_writes_batches_and_flushes_on_sigterm(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("STATE_DIRECTORY", None)
    spool = tmp_path / "state" / "edgecollect" / "spool"
    assert subprocess.run(
        [str(installed / "edgecollect"), "--version"], capture_output=True, text=True
    ).stdout.startswith("edgecollect ")
    started_ns = time.time_ns()
    proc = subprocess.Popen([str(installed / "edgecollect"), "run"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert eventually(lambda: any(spool.glob("*.ecb")), 15.0), "no batch written within 15 s"
        files_before = len(list(spool.glob("*.ecb")))
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped_ns = time.time_ns()
    assert proc.returncode == 0, stderr
    assert "running offline" in stderr
    assert len(list(spool.glob("*.ecb"))) > files_before  # the rings were flushed at SIGTERM

    out = tmp_path / "export.parquet"
    export = subprocess.run(
        [str(installed / "edgecollect"), "spool", "export", "--format", "parquet", str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert export.returncode == 0, export.stdout + export.stderr
    table = pq.read_table(out)
    # Nanosecond timestamps as plain integers: datetime would round them to microseconds.
    for name in ("time_unix_nano", "start_time_unix_nano"):
        table = table.set_column(table.schema.get_field_index(name), name, table.column(name).cast(pa.int64()))
    rows = [r for r in table.to_pylist() if r["name"] == "system.cpu.utilization"]
    assert rows, "no system.cpu.utilization rows exported"
    cpus = psutil.cpu_count()
    per_cpu = [r for r in rows if "cpu.logical_number" in r["attributes"]]
    totals = [r for r in rows if r["attributes"] == "{}"]
    assert len(per_cpu) == cpus * len(totals)
    for r in rows:
        assert started_ns <= r["time_unix_nano"] <= stopped_ns
        assert 0.0 <= r["double_value"] <= 1.0 and r["int_value"] is None
        assert r["unit"] == "1" and r["kind"] == "gauge"


@pytest.mark.integration
def test_arrow_export_and_spool_listing(installed: Path, tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("STATE_DIRECTORY", None)
    config = tmp_path / "fast.toml"
    config.write_text("[batch]\nflush_interval = '1s'\n[sources.host]\ninterval = '1s'\n")
    proc = subprocess.Popen(
        [str(installed / "edgecollect"), "run", "-c", str(config)], env=env, stderr=subprocess.DEVNULL
    )
    spool = tmp_path / "state" / "edgecollect" / "spool"
    try:
        assert eventually(lambda: len(list(spool.glob("*.ecb"))) >= 2, 15.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
    listing = subprocess.run(
        [str(installed / "edgecollect"), "spool", "ls", "-c", str(config)], env=env, capture_output=True, text=True
    )
    assert listing.returncode == 0 and "metrics" in listing.stdout
    first_id = listing.stdout.splitlines()[1].split()[0]
    show = subprocess.run(
        [str(installed / "edgecollect"), "spool", "show", first_id, "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert show.returncode == 0 and "system.cpu.utilization" in show.stdout, show.stdout + show.stderr
    out = tmp_path / "all.arrow"
    export = subprocess.run(
        [str(installed / "edgecollect"), "spool", "export", "--format", "arrow", str(out), "-c", str(config)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert export.returncode == 0, export.stderr
    with pa.memory_map(str(out)) as source:
        table = pa.ipc.open_file(source).read_all()
    assert table.num_rows > 0 and "system.memory.usage" in set(table.column("name").to_pylist())
