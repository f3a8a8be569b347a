"""Every hostile spool entry of issue 10 at once, against the real agent process and the Go sink.

The state_dir holds a 6 GB sparse *.ecb, a 4 GiB file whose header claims that size, a FIFO named
*.ecb, a FIFO temp file, a link to /dev/zero, links to a foreign file, folder and valid-looking
batch, a folder named *.ecb, a quarantine that is a link to a foreign folder, 10,000 small damaged
files, and valid batches of numbered points. The agent must come up (status socket answers) with
its peak RSS within budget, deliver every valid point, quarantine and count the rest with one
summary log line, stop on SIGTERM, and leave the foreign folder exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import Tally, agent_toml, report, sink_points, total
from tests.core.hostile import damaged_files, fingerprint, make_foreign, plant_hostile
from tests.exporters.conftest import Filler
from tests.support.agent import AgentProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

DAMAGED = 10_000
VALID_BATCHES = 12
POINTS = 200
# The agent's peak RSS at its default budgets is ~70-100 MB; reading any hostile entry whole would
# cost 4-6 GB. The budget leaves room for a loaded machine without hiding a whole-file read.
RSS_BUDGET_KIB = 300 * 1024


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def test_agent_starts_on_a_hostile_spool_delivers_the_valid_batches_and_touches_nothing_outside(
    make_sink: Callable[..., Any], agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    sink = make_sink().start()
    state = tmp_path / "state"
    spool = state / "spool"
    foreign = make_foreign(tmp_path / "foreign")
    filler = Filler(spool)
    tally = Tally("numbered points in valid batches")
    for _ in range(VALID_BATCHES):
        tally.published.update(filler.batch_values[filler.metrics(POINTS)])
    kinds = plant_hostile(spool, foreign)
    reasons = damaged_files(spool, DAMAGED)
    (spool / "quarantine").rmdir()
    (spool / "quarantine").symlink_to(foreign, target_is_directory=True)
    before = fingerprint(foreign)

    agent = agents(agent_toml(state, upstream_port=sink.ports["grpc"]), state).start()
    assert agent.proc is not None
    started = time.monotonic()
    agent.wait_up(timeout_s=120)
    ready_s = time.monotonic() - started
    peak_kib = vm_hwm_kib(agent.proc.pid)

    def delivered() -> bool:
        return tally.published <= {int(p[3]) for p in sink_points(sink)}

    wait_until(delivered, 120, "every valid point at the sink")
    quarantined = agent.counter("edgecollect.spool.quarantined")
    peak_kib = max(peak_kib, vm_hwm_kib(agent.proc.pid))
    assert agent.stop() == 0, agent.tail()

    tally.delivered.update(int(p[3]) for p in sink_points(sink) if p[0].startswith("test.m"))
    log_lines = agent.tail(10**6).splitlines()
    summary = [line for line in log_lines if "quarantined" in line]
    report("hostile spool at start-up", [tally], ready_s=round(ready_s, 2), vm_hwm_mib=round(peak_kib / 1024, 1),
           quarantined=quarantined, hostile_kinds=len(kinds), damaged=DAMAGED, log_lines=len(log_lines))

    non_regular = sum(1 for k in kinds.values() if k not in ("sparse_zeros", "sparse_claimed")) + 1  # + the link
    assert quarantined == {"bad_magic": reasons["bad_magic"] + 1, "truncated": reasons["truncated"],
                           "too_large": 1, "not_regular": non_regular}
    assert total(quarantined) == DAMAGED + len(kinds) + 1
    assert peak_kib <= RSS_BUDGET_KIB, f"peak RSS {peak_kib} KiB over the {RSS_BUDGET_KIB} KiB budget"
    assert not tally.missing, f"{len(tally.missing)} valid points missing: {sorted(tally.missing)[:10]}"
    assert fingerprint(foreign) == before, "the agent changed something outside its state_dir"
    assert (spool / "quarantine").is_dir() and not (spool / "quarantine").is_symlink()
    kept = [p for p in (spool / "quarantine").iterdir() if p.is_file() and not p.is_symlink()]
    assert len(kept) == DAMAGED, "the giants (over the quarantine cap) went alone, the small ones stay"
    assert len([line for line in summary if "damaged spool files" in line]) == 1, summary[:5]
    assert len(summary) <= 3, f"{len(summary)} quarantine log lines: {summary[:5]}"
