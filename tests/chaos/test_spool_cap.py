"""A spool cap lowered between runs (a gateway's config tightened after a long outage): the agent
must come up with its spool under the new cap, the oldest batches dropped and counted.

(Found by this test: `Spool.open()` used to apply max_age but not the byte cap, so a quiet agent
could sit over its disk budget until its next write.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import agent_toml, report, total
from tests.exporters.conftest import Filler
from tests.support.agent import AgentProcess

pytestmark = pytest.mark.integration


def test_agent_started_with_a_lower_cap_is_under_it(agents: Callable[..., AgentProcess], tmp_path: Path) -> None:
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
