"""Write-behind against the real Go sink: no spool write while it is healthy, everything spooled
(and then delivered) while it is down or too slow, every token released only once durable.

The pipeline is the real one minus sources: a ring, the Batcher cutting into a real Spool through a
WriteBehind, and the Forwarder thread sending to the sink (tests/interop). Waits are bounded waits
for conditions; nothing asserts on timing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgecollect.batcher import Batcher
from edgecollect.buffer import Ring
from edgecollect.exporters.forwarder import Forwarder
from edgecollect.exporters.upstream import UpstreamConfig
from edgecollect.model import Resource, Series, SeriesRegistry, attrs
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from edgecollect.writebehind import WriteBehind
from tests.exporters.conftest import config, metric_values
from tests.support.ports import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


@dataclass
class Pipeline:
    telemetry: Telemetry
    spool: Spool
    ring: Ring
    batcher: Batcher
    behind: WriteBehind
    sid: int
    durable: list[int] = field(default_factory=list)
    values: list[int] = field(default_factory=list)
    token: int = 0

    def cut(self, points: int) -> None:
        """Points under one new token, then a full cut (what a flush tick does)."""
        self.token += 1
        first = len(self.values)
        rows = [(self.sid, 1_000_000 + v, v, 0x80) for v in range(first, first + points)]
        self.ring.extend(rows, self.token)
        self.values += range(first, first + points)
        self.batcher.flush()

    def spool_writes(self) -> int:
        found = self.telemetry.find("edgecollect.spool.batches_written")
        return found.total() if found is not None else 0


@contextmanager
def pipeline(tmp_path: Path, cfg: UpstreamConfig, timeout_s: float = 5.0) -> Iterator[Pipeline]:
    telemetry = Telemetry()
    spool = Spool(tmp_path / "spool", telemetry)
    spool.open()
    registry = SeriesRegistry()
    sid = registry.intern(Series("wb.value", "1", "gauge", attrs({"dev": "a"})))
    ring = Ring("test", 100_000, "drop_oldest", telemetry.counter("buffer", "dropped", "policy"),
                telemetry.counter("buffer", "logs_dropped", "policy"))
    stop = threading.Event()
    behind = WriteBehind(spool.append, lambda: spool.stats().files, telemetry, stop, timeout_s=timeout_s)
    batcher = Batcher([ring], registry, Resource(attrs({"host.name": "wb"})), "boot", spool.append, telemetry,
                      flush_interval_s=3600.0, max_points=5000)
    batcher.set_behind(behind)
    fwd = Forwarder(cfg, spool, telemetry, stop, behind=behind)
    pipe = Pipeline(telemetry, spool, ring, batcher, behind, sid)
    ring.on_durable(pipe.durable.append)
    thread = threading.Thread(target=fwd.run, name="forwarder", daemon=True)
    thread.start()
    try:
        yield pipe
    finally:
        stop.set()
        fwd.notify()
        thread.join(15)
        assert not thread.is_alive(), "forwarder did not stop"


def delivered(sink: Any) -> set[int]:
    return set(metric_values(sink.records("metrics")))


def released(pipe: Pipeline) -> Callable[[], bool]:
    return lambda: bool(pipe.durable) and pipe.durable[-1] == pipe.token


def test_a_healthy_sink_gets_every_batch_and_the_spool_is_never_written(make_sink: Any, tmp_path: Path) -> None:
    sink = make_sink().start()
    with pipeline(tmp_path, config(sink.grpc_address)) as pipe:
        for _ in range(20):
            pipe.cut(60)
            wait_until(released(pipe), 30, "the cut's token released by the sink's ack")
        wait_until(lambda: delivered(sink) >= set(pipe.values), 30, "every point at the sink")
        assert pipe.spool_writes() == 0, "a healthy upstream must cost no spool write"
        assert not list(pipe.spool.directory.glob("*.ecb"))
        assert pipe.durable == list(range(1, 21)), "tokens released once each, in order"


def test_a_dead_sink_spools_everything_then_delivers_it(make_sink: Any, tmp_path: Path) -> None:
    port = free_port()
    with pipeline(tmp_path, config(f"127.0.0.1:{port}", retry_initial=0.2, retry_max=0.5)) as pipe:
        pipe.cut(60)
        wait_until(released(pipe), 30, "the first cut spilled once the connect failed")
        for _ in range(5):
            pipe.cut(60)
            assert pipe.durable[-1] == pipe.token, "an unhealthy upstream: spooled, so durable at once"
        assert pipe.spool_writes() == 6 and pipe.spool.stats().points == 360
        sink = make_sink(grpc_port=port).start()
        wait_until(lambda: pipe.spool.stats().files == 0, 60, "the backlog delivered")
        wait_until(lambda: delivered(sink) >= set(pipe.values), 30, "every point at the sink")
        # Healthy again with an empty spool: the next cuts skip the disk once more.
        writes = pipe.spool_writes()
        for _ in range(3):
            pipe.cut(60)
            wait_until(released(pipe), 30, "released by the sink's ack")
        assert pipe.spool_writes() == writes
        wait_until(lambda: delivered(sink) >= set(pipe.values), 30, "the new points at the sink")


def test_a_slow_sink_gets_batches_spooled_after_the_bound(make_sink: Any, tmp_path: Path) -> None:
    # Acks 5 s late, spooled after 0.5 s: a wide margin on a loaded machine (the OTAP timeout is
    # raised so the late ack is not taken for a lost one).
    sink = make_sink(ack_delay_ms=5000).start()
    with pipeline(tmp_path, config(sink.grpc_address, timeout=30.0), timeout_s=0.5) as pipe:
        pipe.cut(60)
        wait_until(lambda: pipe.spool_writes() == 1, 30, "the unacked batch spooled after the bound")
        assert pipe.durable == [1], "durable by fsync before the upstream answered"
        wait_until(lambda: pipe.spool.stats().files == 0, 30, "the late ack deleting the spooled copy")
        wait_until(lambda: delivered(sink) >= set(pipe.values), 30, "every point at the sink")
        assert sum(metric_values(sink.records("metrics")).values()) == 60, "sent once, not again from the spool"
