"""`spool.max_age` applies while the agent runs (issue 10 item 6), not only at start-up."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from edgecollect.config import loads
from edgecollect.runtime import Agent
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.core.batches import metrics_ipc
from tests.support.wait import eventually


class _TwoMinutesLater:
    """The spool's view of the clock, moved on past max_age (the shortest max_age a config may set
    is one minute, too long to wait for in a test)."""

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)

    def time_ns(self) -> int:
        return time.time_ns() + 120 * 10**9


def test_a_running_agent_drops_batches_older_than_max_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    cfg = loads(
        f"[agent]\nstate_dir = '{state}'\nself_interval = '200ms'\nclock = 'assume_synced'\n"
        "[batch]\nflush_interval = '200ms'\n[spool]\nmax_age = '1m'\n[sources.host]\nenabled = false\n"
    )
    agent = Agent(cfg)
    agent.start()
    try:
        first = state / "spool" / f"{1:016x}.ecb"
        assert eventually(first.exists, 30), "no batch spooled"
        monkeypatch.setattr("edgecollect.spool.time", _TwoMinutesLater())
        # No upstream is configured: only expiry on the batcher's tick can remove a spooled batch.
        assert eventually(lambda: not first.exists(), 60), "a batch older than max_age is still spooled"

        def dropped_for_age() -> int:  # counted just after the file goes
            dropped = agent.telemetry.find("edgecollect.spool.batches_dropped")
            return 0 if dropped is None else dropped.value("max_age")

        assert eventually(lambda: dropped_for_age() >= 1, 10), "the expiry was not counted as max_age"
        assert agent.spool.stats().oldest_age_s < 60
    finally:
        agent.shutdown()


def test_expire_works_from_memory_without_touching_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    spool = Spool(tmp_path, Telemetry(), max_age_s=3600)
    spool.open()
    for i in range(50):
        spool.append("metrics", metrics_ipc(5, seed=i), 5)

    def no_listing(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("expire() listed or stat'ed the spool folder")

    for name in ("scandir", "listdir", "stat", "lstat"):
        monkeypatch.setattr(os, name, no_listing)
    assert spool.expire() == 0
    spool.max_age_s = 0.0
    time.sleep(0.01)
    assert spool.expire() == 50 and spool.list() == []
    monkeypatch.undo()
    assert list(tmp_path.glob("*.ecb")) == []
