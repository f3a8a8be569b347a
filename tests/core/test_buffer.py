from __future__ import annotations

from edgecollect.buffer import FLAG_INT, INITIAL_SLOTS, POINT_BYTES
from edgecollect.model import LogRecord
from edgecollect.telemetry import Telemetry
from tests.core.conftest import make_ring


def test_drain_returns_points_oldest_first_with_types_kept(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=4)
    ring.append(1, 100, 1.5)
    ring.append(2, 200, 7)
    ring.append(3, 300, True)
    d = ring.drain()
    assert list(d.series_ids) == [1, 2, 3]
    assert list(d.times_ns) == [100, 200, 300]
    assert d.floats[0] == 1.5 and not d.flags[0] & FLAG_INT
    assert d.ints[1] == 7 and d.flags[1] & FLAG_INT
    assert d.ints[2] == 1 and d.flags[2] & FLAG_INT
    assert len(ring) == 0 and len(ring.drain()) == 0


def test_drop_oldest_keeps_newest_and_counts_every_drop(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=3)
    for i in range(10):
        ring.append(i, i, float(i))
    d = ring.drain()
    assert list(d.series_ids) == [7, 8, 9]
    assert telemetry.find("edgecollect.buffer.dropped") is not None
    assert telemetry.find("edgecollect.buffer.dropped").value("drop_oldest") == 7  # type: ignore[union-attr]


def test_drop_newest_keeps_oldest_and_counts_every_drop(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=3, overflow="drop_newest")
    for i in range(10):
        ring.append(i, i, float(i))
    assert list(ring.drain().series_ids) == [0, 1, 2]
    assert telemetry.find("edgecollect.buffer.dropped").value("drop_newest") == 7  # type: ignore[union-attr]


def test_wraparound_keeps_order_across_many_drains(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=5)
    expected = []
    seen = []
    for i in range(1, 200):
        ring.append(i, i, float(i))
        expected.append(i)
        if i % 3 == 0:
            seen.extend(ring.drain().series_ids)
    seen.extend(ring.drain().series_ids)
    dropped = telemetry.find("edgecollect.buffer.dropped").total()  # type: ignore[union-attr]
    assert seen == expected  # 3 per drain never overflows a ring of 5
    assert dropped == 0


def test_memory_is_bounded_by_capacity_whatever_the_input(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=1000)
    for i in range(50_000):
        ring.append(i % 7, i, float(i))
        assert ring.memory_bytes() <= 1000 * POINT_BYTES
    assert ring.memory_bytes() == 1000 * POINT_BYTES == ring.max_memory_bytes() - (1 << 20)
    assert len(ring) == 1000
    assert list(ring.drain().series_ids) == [i % 7 for i in range(49_000, 50_000)]


def test_a_ring_pays_for_what_it_holds_not_for_its_cap(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=100_000)
    assert ring.memory_bytes() == INITIAL_SLOTS * POINT_BYTES
    for i in range(INITIAL_SLOTS + 1):  # one past the first storage: it doubles, once
        ring.append(1, i, float(i))
    assert ring.memory_bytes() == 2 * INITIAL_SLOTS * POINT_BYTES
    assert list(ring.drain().times_ns) == list(range(INITIAL_SLOTS + 1))


def test_growing_keeps_order_and_tokens_across_a_wrapped_head(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10 * INITIAL_SLOTS)
    for i in range(INITIAL_SLOTS):
        ring.append(i, i, i, token=i + 1)
    ring.drain(INITIAL_SLOTS // 2)  # the head is now mid-storage; the next appends wrap
    for i in range(INITIAL_SLOTS, 3 * INITIAL_SLOTS):
        ring.append(i, i, i, token=i + 1)
    out = ring.drain(INITIAL_SLOTS)
    assert list(out.series_ids) == list(range(INITIAL_SLOTS // 2, INITIAL_SLOTS // 2 + INITIAL_SLOTS))
    assert out.max_token == INITIAL_SLOTS // 2 + INITIAL_SLOTS  # nothing still held is acknowledged
    rest = ring.drain()
    assert list(rest.series_ids) == list(range(INITIAL_SLOTS // 2 + INITIAL_SLOTS, 3 * INITIAL_SLOTS))
    assert rest.max_token == 3 * INITIAL_SLOTS


def test_storage_shrinks_after_quiet_drains_but_never_below_the_start(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=100_000)
    for i in range(8 * INITIAL_SLOTS):  # a burst
        ring.append(1, i, float(i))
    ring.drain()
    peak = ring.memory_bytes()
    assert peak == 8 * INITIAL_SLOTS * POINT_BYTES
    sizes = []
    for _ in range(6):  # quiet flushes of a few points each
        ring.append(1, 0, 0.0)
        ring.drain()
        sizes.append(ring.memory_bytes())
    assert sizes == [p * POINT_BYTES for p in (4 * INITIAL_SLOTS, 2 * INITIAL_SLOTS, INITIAL_SLOTS,
                                               INITIAL_SLOTS, INITIAL_SLOTS, INITIAL_SLOTS)]
    assert peak > sizes[-1]


def test_a_small_cap_is_never_exceeded_by_the_start_storage(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=3)
    assert ring.memory_bytes() == 3 * POINT_BYTES


def test_drain_reports_highest_token_including_dropped_newest(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=2, overflow="drop_newest")
    ring.extend([(1, 1, 1.0, 0)], token=1)
    ring.extend([(1, 2, 2.0, 0)], token=2)
    ring.extend([(1, 3, 3.0, 0)], token=3)  # refused, but its message is handled (counted drop)
    got: list[int] = []
    ring.on_durable(got.append)
    d = ring.drain()
    assert d.max_token == 3
    ring.mark_durable(d.max_token)
    assert got == [3]


def test_log_budget_drops_oldest_records_and_counts_them(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=10, max_log_bytes=1000)
    for i in range(20):
        ring.append_log(LogRecord(time_ns=i, body="x" * 100))
    logs = ring.drain().logs
    assert 0 < len(logs) < 20
    assert [r.time_ns for r in logs] == list(range(20 - len(logs), 20))
    assert telemetry.find("edgecollect.buffer.logs_dropped").value("drop_oldest") == 20 - len(logs)  # type: ignore[union-attr]


def test_context_rejects_integers_the_ring_cannot_hold_instead_of_crashing(telemetry: Telemetry) -> None:
    from edgecollect.model import Point, Series
    from tests.core.conftest import make_context

    ctx = make_context(telemetry)
    s = Series("m")
    assert ctx.emit([Point(s, 1 << 63), Point(s, -(1 << 63) - 1), Point(s, float("nan")), Point(s, 5)]) == 1
    rejected = telemetry.find("edgecollect.test.points_rejected", source="test")
    assert rejected is not None and rejected.snapshot() == {"out_of_range": 2, "not_finite": 1}


def test_a_limited_drain_takes_the_oldest_across_the_wrap_and_keeps_the_rest(telemetry: Telemetry) -> None:
    ring = make_ring(telemetry, capacity=5)
    for i in range(8):  # drop_oldest: the ring now holds 3..7 and its head has wrapped
        ring.append(i, i, i)
    ring.append_log(LogRecord(time_ns=1, severity_number=9, severity_text="INFO", body="stays"))
    first = ring.drain(3)
    assert list(first.series_ids) == [3, 4, 5] and first.logs == []
    assert list(first.ints) == [3, 4, 5]
    assert len(ring) == 2 and ring.log_count() == 1
    ring.append(8, 8, 8)
    rest = ring.drain()
    assert list(rest.series_ids) == [6, 7, 8] and len(rest.logs) == 1
