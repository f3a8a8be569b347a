"""Coalesced replay against the real Go sink: a backlog of small spooled batches leaves as a few
wire batches of up to `max_points`, every point arrives in order per series, and a poison batch in a
coalesced wire batch is found alone and quarantined while its neighbours are delivered."""

from __future__ import annotations

from typing import Any

import pytest

from tests.exporters.conftest import (
    Filler,
    assert_all_arrived,
    config,
    forwarding,
    metric_values,
)
from tests.support.ports import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_a_backlog_of_small_batches_is_replayed_in_max_points_wire_batches(make_sink: Any, filler: Filler) -> None:
    ids = [filler.metrics(100) for _ in range(40)]
    sink = make_sink().start()
    with forwarding(config(sink.grpc_address), filler, max_points=1000):
        wait_until(lambda: filler.spool.stats().files == 0, 60, "the backlog delivered")
    records = sink.records("metrics")
    assert len(records) == 4, "40 spooled batches of 100 points leave as 4 wire batches of 1,000"
    assert_all_arrived(filler.values, metric_values(records), "coalesced replay")
    delivered = filler.telemetry.find("edgecollect.upstream.batches_delivered")
    assert delivered is not None and delivered.total() == len(ids), "every spooled batch acked and deleted"


def test_a_poison_batch_in_a_coalesced_wire_batch_is_quarantined_alone(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(reject_batch_containing="poison-pill").start()
    good = [filler.metrics(50) for _ in range(3)]
    poison = filler.metrics(50, {"marker": "poison-pill"})
    good += [filler.metrics(50) for _ in range(3)]
    with forwarding(config(sink.grpc_address), filler, max_points=5000):
        wait_until(lambda: filler.spool.stats().files == 0, 60, "the spool to drain")
    quarantined = list(filler.spool.quarantine_dir.iterdir())
    assert len(quarantined) == 1 and quarantined[0].name.endswith(f"{poison:016x}.ecb")
    expected = [v for i in good for v in filler.batch_values[i]]
    seen = metric_values(sink.records("metrics"))
    assert_all_arrived(expected, seen, "the poison's neighbours")
    assert not set(filler.batch_values[poison]) & set(seen)


def test_offline_the_forwarder_compacts_the_spool_and_replays_it_whole(make_sink: Any, filler: Filler) -> None:
    from edgecollect.compaction import CompactionConfig, Compactor

    port = free_port()
    compactor = Compactor(filler.spool, filler.telemetry, CompactionConfig(max_points=4096, fanout=4))
    cfg = config(f"127.0.0.1:{port}", retry_initial=0.5, retry_max=1.0)
    filler.metrics(10)
    with forwarding(cfg, filler, max_points=5000, compactor=compactor) as fwd:
        wait_until(lambda: fwd.status().state == "offline", 30, "the forwarder to find the upstream away")
        for _ in range(39):
            filler.metrics(10)
            fwd.notify()  # what the batcher does after each spool write
        # When merges run depends on the backoff timing, so the exact files do; the bound does not:
        # fewer than `fanout` files of each of the three tiers once every due merge ran.
        wait_until(lambda: filler.spool.stats().files <= 3 * 3, 30, "small files merged while offline")
        assert filler.spool.stats().points == 400
        merges = filler.telemetry.find("edgecollect.spool.merges")
        assert merges is not None and merges.snapshot().get("ok", 0) >= 1
        sink = make_sink(grpc_port=port).start()
        wait_until(lambda: filler.spool.stats().files == 0, 60, "the compacted backlog delivered")
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "compacted, then replayed")
