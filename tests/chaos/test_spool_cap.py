"""A spool cap lowered between runs (a gateway's config tightened after a long outage): the agent
must come up with its spool under the new cap, the oldest batches dropped and counted.

Known bug, kept as a strict xfail so it turns into a failure once fixed: `Spool.open()`
(edgecollect/spool.py) indexes every valid file and runs `expire()` (max_age) but never applies the
byte cap, so the spool stays over `max_size` until the next append calls `_make_room()`; an agent
with nothing to write (or whose sources are quiet) sits over its disk budget indefinitely.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import Agent, agent_toml, report, total
from tests.exporters.conftest import Filler

pytestmark = pytest.mark.integration


@pytest.mark.xfail(strict=True, reason="Spool.open() does not apply max_size to what is already on disk")
def test_agent_started_with_a_lower_cap_is_under_it(agents: Callable[..., Agent], tmp_path: Path) -> None:
    state = tmp_path / "state"
    filler = Filler(state / "spool")
    for _ in range(100):
        filler.metrics(2000)
    before = filler.spool.stats().bytes
    cap = 512 * 1024
    agent = agents(agent_toml(state, spool_max="512KiB"), state).start()
    agent.wait_up()
    st = agent.status() or {}
    on_disk = sum(p.stat().st_size for p in (state / "spool").glob("*.ecb"))
    dropped = total(agent.counter("edgecollect.spool.points_dropped"))
    report("spool cap lowered between runs", [], bytes_before=before, cap=cap, bytes_after_start=on_disk,
           status_bytes=st.get("spool", {}).get("bytes"), points_dropped=dropped)
    assert on_disk <= cap, f"{on_disk} bytes on disk after start, cap {cap}"
    assert dropped > 0
