"""Cut rules: a full ring is cut in whole batches, the tick cuts everything, owed acks cut at once,
and a partial cut never reports a message durable while any of its points is still in the ring."""

from __future__ import annotations

import threading

import pyarrow as pa

from edgecollect.batcher import Batcher
from edgecollect.buffer import Ring
from edgecollect.model import LogRecord, Resource, Series, SeriesRegistry, attrs
from edgecollect.telemetry import Telemetry
from tests.core.conftest import make_ring
from tests.support.wait import eventually


class Written:
    """The batcher's spool writer: keeps (signal, points, rows) of every batch in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int, pa.Table]] = []
        self._lock = threading.Lock()

    def __call__(self, signal: str, data: bytes, points: int) -> int:
        table = pa.ipc.open_stream(data).read_all()
        with self._lock:
            self.batches.append((signal, points, table))
            return len(self.batches)

    def sizes(self, signal: str = "metrics") -> list[int]:
        with self._lock:
            return [points for s, points, _ in self.batches if s == signal]


def setup(
    telemetry: Telemetry, rings: list[Ring], max_points: int, flush_interval_s: float = 3600.0
) -> tuple[Batcher, Written, int]:
    registry = SeriesRegistry()
    sid = registry.intern(Series("sensor.value", "1", "gauge", attrs({"sensor": "a"})))
    written = Written()
    batcher = Batcher(rings, registry, Resource(attrs({"host.name": "t"})), "boot", written, telemetry,
                      flush_interval_s=flush_interval_s, max_points=max_points)
    return batcher, written, sid


def rows(sid: int, first: int, count: int) -> list[tuple[int, int, int | float, int]]:
    return [(sid, 1_000 + i, i, 0) for i in range(first, first + count)]


def test_a_full_ring_is_cut_in_whole_batches_and_the_rest_waits_for_the_tick(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10_000)
    batcher, written, sid = setup(telemetry, [ring], max_points=100)
    ring.extend(rows(sid, 0, 250))
    ring.append_log(LogRecord(time_ns=5, severity_number=9, severity_text="INFO", body="kept for the tick"))

    batcher.flush(full=False)
    assert written.sizes() == [100, 100]
    assert len(ring) == 50 and ring.log_count() == 1  # the remainder and the log wait for the tick
    cut = pa.concat_tables([t for _, _, t in written.batches])
    assert sorted(cut.column("int_value").to_pylist()) == list(range(200))  # the oldest went first

    batcher.flush()  # the tick
    assert written.sizes() == [100, 100, 50] and written.sizes("logs") == [1]
    assert len(ring) == 0 and ring.log_count() == 0


def test_a_ring_below_max_points_is_left_alone_until_the_tick(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10_000)
    batcher, written, sid = setup(telemetry, [ring], max_points=100)
    ring.extend(rows(sid, 0, 99))
    assert batcher.flush(full=False) == 0 and written.batches == []
    assert batcher.flush() == 99


def test_a_partial_cut_does_not_report_a_straddling_message_durable(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10_000)
    durable: list[int] = []
    ring.on_durable(durable.append)
    batcher, written, sid = setup(telemetry, [ring], max_points=100)
    ring.extend(rows(sid, 0, 60), token=1)
    ring.extend(rows(sid, 60, 60), token=2)  # 40 of these fall into the first batch, 20 stay
    ring.note_token(3)  # a message that produced nothing: covered only once token 2 is
    batcher.flush(full=False)
    assert written.sizes() == [100]
    assert durable == [1], "token 2 still has points in the ring"
    batcher.flush()
    assert durable == [1, 3]


def test_a_log_record_still_held_keeps_its_token_unacknowledged(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10_000)
    durable: list[int] = []
    ring.on_durable(durable.append)
    batcher, _, sid = setup(telemetry, [ring], max_points=100)
    ring.extend(rows(sid, 0, 50), token=1)
    ring.append_log(LogRecord(time_ns=5, severity_number=9, severity_text="INFO", body="from message 2"), token=2)
    ring.extend(rows(sid, 50, 50), token=3)
    batcher.flush(full=False)  # all 100 points are cut; the log of message 2 is not
    assert durable == [1]
    batcher.flush()
    assert durable == [1, 3]


def test_a_source_that_owes_acks_gets_its_whole_ring_cut(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10_000)
    durable: list[int] = []
    ring.on_durable(durable.append)
    batcher, written, sid = setup(telemetry, [ring], max_points=100)
    ring.extend(rows(sid, 0, 130), token=7)
    ring.request_flush()
    batcher.flush(full=False)
    assert written.sizes() == [100, 30] and durable == [7] and len(ring) == 0
    ring.extend(rows(sid, 0, 10), token=8)
    assert batcher.flush(full=False) == 0, "the request was answered by the full drain"


def test_a_busy_ring_does_not_starve_a_quiet_one(telemetry: Telemetry) -> None:
    busy, quiet = make_ring(telemetry, capacity=100_000), make_ring(telemetry, capacity=1000)
    batcher, written, sid = setup(telemetry, [busy, quiet], max_points=100, flush_interval_s=0.5)
    quiet.extend(rows(sid, 0, 5))
    stop, producing = threading.Event(), threading.Event()

    produced = [0]

    def produce() -> None:
        while not producing.wait(0.01):
            busy.extend(rows(sid, produced[0], 40))  # wakes the batcher every few rounds
            produced[0] += 40

    threads = [threading.Thread(target=batcher.run, args=(stop,)), threading.Thread(target=produce)]
    for t in threads:
        t.start()
    try:
        assert eventually(lambda: len(quiet) == 0), "the tick never came while the busy ring kept waking"
        assert eventually(lambda: len(written.sizes()) >= 3)
    finally:
        producing.set()
        stop.set()
        batcher.wake()
        for t in threads:
            t.join(10)
    batcher.flush()
    assert sum(written.sizes()) == produced[0] + 5
