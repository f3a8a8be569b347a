"""kill -9 while batches are being written: restarts succeed, durable batches are intact."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgecollect.batch import from_ipc
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[2]
KILLS = 50


@pytest.mark.integration
def test_kill_9_at_50_random_moments_never_loses_a_durable_batch(tmp_path: Path) -> None:
    rnd = random.Random(2024)
    spool_dir = tmp_path / "spool"
    durable: set[int] = set()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(KILLS):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.core.spool_writer", str(spool_dir)],
            stdout=subprocess.PIPE,
            cwd=REPO,
            env=env,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the writer is up and has written one batch
        assert first.strip().isdigit(), f"writer failed to start: {first!r}"
        time.sleep(rnd.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        # Ids printed before the kill were returned by append(), i.e. fsync'd and renamed.
        durable.update(int(line) for line in (first + out).split() if line.isdigit())

        telemetry = Telemetry()
        spool = Spool(spool_dir, telemetry, max_size=1 << 40)
        spool.open()  # must never fail, whatever the kill left behind
        on_disk = {b.id for b in spool.list()}
        missing = durable - on_disk
        assert not missing, f"durable batches lost: {sorted(missing)[:5]}"
        for batch in spool.list():
            payload = spool.read(batch.id)
            assert payload is not None, f"batch {batch.id} listed but unreadable"
            assert from_ipc(payload).num_rows > 0
        quarantined = telemetry.find("edgecollect.spool.quarantined")
        # A kill can only leave a temp file behind (removed), never a damaged final file.
        assert quarantined is None or quarantined.total() == 0
    assert len(durable) > KILLS
