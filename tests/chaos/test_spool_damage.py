"""Spool damage between runs: random truncation, bit flips, zero-filled blocks, deleted files, torn
temp files, and well-framed batches whose Arrow is garbage. Every round fills a real spool with
numbered points, damages some files, and starts the real agent on it with the Go sink up: the agent
must start (0 failed starts), deliver every undamaged batch, and quarantine and count every damaged
one (at start-up, or in the forwarder for unreadable Arrow). [quick: 40 cases, full: 500]
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgecollect.spool import SUFFIX, frame, unframe
from tests.chaos.harness import Tally, agent_toml, report, rng, scale, sink_points, total
from tests.exporters.conftest import Filler
from tests.support.agent import AgentProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CASES = scale(40, 500)
PER_ROUND = 10
BATCHES = 14  # per round; PER_ROUND of them are damaged (or deleted)
POINTS = 40
KINDS = ("truncate", "bitflip", "zero_block", "delete", "torn_temp", "bad_arrow")


def damage(path: Path, kind: str, r: Any) -> bool:
    """Damage one batch file; True when its bytes really changed (a zeroed block may hit zeros)."""
    data = bytearray(path.read_bytes())
    before = bytes(data)
    if kind == "delete":
        path.unlink()
        return True
    if kind == "bad_arrow":
        # Damaged before it was framed (bad RAM, a bug): the frame checks out, the Arrow inside does
        # not. Spool.open() accepts it; the forwarder must quarantine it, not loop on it.
        info, payload = unframe(before)
        garbage = bytearray(payload)
        for _ in range(8):
            garbage[r.randrange(len(garbage))] ^= 0xFF
        path.write_bytes(frame(info.id, info.signal, info.created_ns, info.points, bytes(garbage[: len(garbage) // 2])))
        return True
    if kind == "torn_temp":
        # A write that never reached its rename, next to an intact file: removed, never read.
        (path.parent / f".{path.stem}.tmp").write_bytes(before[: r.randrange(1, len(before))])
        return False
    if kind == "truncate":
        data = data[: r.randrange(0, len(data))]
    elif kind == "bitflip":
        for _ in range(r.randint(1, 3)):
            data[r.randrange(len(data))] ^= 1 << r.randrange(8)
    elif kind == "zero_block":
        start = r.randrange(len(data))
        n = r.randint(1, 512)
        data[start : start + n] = bytes(len(data[start : start + n]))
    path.write_bytes(bytes(data))
    os.sync()
    return bytes(data) != before


def test_damaged_spool_files_are_quarantined_and_the_rest_delivered(
    make_sink: Callable[..., Any], agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    r = rng("spool-damage")
    sink = make_sink().start()
    tally = Tally("numbered points in intact batches")
    kinds: collections.Counter[str] = collections.Counter()
    damaged_total = deleted_total = failed_starts = 0
    quarantined_total = 0
    rounds = CASES // PER_ROUND
    for rnd in range(rounds):
        state = tmp_path / f"round{rnd}"
        filler = Filler(state / "spool")
        filler.next_value = rnd * 1_000_000
        ids = [filler.metrics(POINTS) for _ in range(BATCHES)]
        victims = r.sample(ids, PER_ROUND)
        damaged = 0
        for batch_id in ids:
            values = filler.batch_values[batch_id]
            if batch_id not in victims:
                tally.published.update(values)
                continue
            kind = r.choice(KINDS)
            kinds[kind] += 1
            path = state / "spool" / f"{batch_id:016x}{SUFFIX}"
            changed = damage(path, kind, r)
            if kind == "delete":
                deleted_total += 1
            elif changed:
                damaged += 1
            else:
                tally.published.update(values)  # intact after all: it must arrive like any other

        agent = agents(agent_toml(state, upstream_port=sink.ports["grpc"]), state).start()
        try:
            agent.wait_up()
        except AssertionError:
            failed_starts += 1
            raise
        expected = set(tally.published)

        def arrived(expected: set[int] = expected) -> bool:
            return expected <= {p[3] for p in sink_points(sink)}

        def emptied(agent: AgentProcess = agent) -> bool:
            return bool((agent.status() or {}).get("spool", {}).get("files") == 0)

        wait_until(arrived, 60, f"round {rnd}: every intact batch at the sink")
        wait_until(emptied, 30, f"round {rnd}: the spool emptied")
        quarantined = total(agent.counter("edgecollect.spool.quarantined"))
        in_folder = len([p for p in (state / "spool" / "quarantine").iterdir() if p.is_file()])
        temps = list((state / "spool").glob("*.tmp"))
        assert agent.stop() == 0, agent.tail()
        assert quarantined == damaged, f"round {rnd}: {damaged} damaged files, {quarantined} counted as quarantined"
        assert in_folder == damaged, f"round {rnd}: {damaged} damaged files, {in_folder} in quarantine/"
        assert not temps, f"round {rnd}: temp files left: {temps}"
        damaged_total += damaged
        quarantined_total += quarantined

    tally.delivered.update(p[3] for p in sink_points(sink) if p[0].startswith("test.m"))
    report("spool damage between runs", [tally], cases=rounds * PER_ROUND, kinds=dict(kinds), damaged=damaged_total,
           quarantined=quarantined_total, deleted=deleted_total, failed_starts=failed_starts)
    assert failed_starts == 0
    assert not tally.missing, f"{len(tally.missing)} points of intact batches missing: {sorted(tally.missing)[:10]}"
