"""deadband and aggregate: exact outputs on known inputs — counters, resets, NaN, late points,
window boundaries, timers and shutdown mid-window — and what they do to message acks."""

from __future__ import annotations

from edgecollect.processors import ProcessingRing
from tests.processors.pipe import S, counter, gauge, pipe

DEADBAND = """
[[processors]]
kind = "deadband"
metrics = ["t", "c"]
threshold = 0.5
max_silence = "60s"
"""


def close(p: object) -> None:
    ring = p.ring  # type: ignore[attr-defined]
    assert isinstance(ring, ProcessingRing)
    ring.close()


def test_deadband_emits_changes_forced_silence_and_the_held_value_at_shutdown() -> None:
    p = pipe(DEADBAND)
    for t, v in ((0, 20.0), (1, 20.2), (2, 20.4), (3, 20.6), (4, 20.3), (70, 20.5), (71, 20.6)):
        p.emit(gauge("t", v, t))
    p.emit(gauge("other", 1.0, 5), gauge("other", 1.0, 6))  # not selected: passes as is
    close(p)
    assert p.out() == [
        ("t", 0.0, 20.0),
        ("t", 3.0, 20.6),
        ("t", 70.0, 20.5),
        ("other", 5.0, 1.0),
        ("other", 6.0, 1.0),
        ("t", 71.0, 20.6),
    ]
    assert p.dropped("deadband.0") == {"deadband": 3}


def test_deadband_max_silence_resends_the_held_value_on_a_tick() -> None:
    p = pipe(DEADBAND)
    p.emit(gauge("t", 10.0, 0), gauge("t", 10.1, 1))
    p.clock.now = 30 * S
    assert p.out() == [("t", 0.0, 10.0)]  # the drain ticks: 30 s of silence is not 60
    p.clock.now = 61 * S
    assert p.out() == [("t", 1.0, 10.1)]
    close(p)
    assert p.out() == []  # nothing held any more


def test_deadband_never_drops_a_counter_reset_and_keeps_the_increase_before_it() -> None:
    p = pipe(DEADBAND.replace("threshold = 0.5", "threshold = 100.0"))
    for t, v in ((0, 1000), (1, 1010), (2, 1020), (3, 5), (4, 10)):
        p.emit(counter("c", v, t))
    close(p)
    assert p.out() == [("c", 0.0, 1000), ("c", 2.0, 1020), ("c", 3.0, 5), ("c", 4.0, 10)]
    assert p.dropped("deadband.0") == {"deadband": 1}


def test_deadband_late_points_pass_and_nan_is_rejected_without_moving_the_reference() -> None:
    p = pipe(DEADBAND)
    p.emit(gauge("t", 1.0, 10))
    assert p.emit(gauge("t", float("nan"), 11)) == 0
    p.emit(gauge("t", 50.0, 5))  # late
    p.emit(gauge("t", 1.4, 12))  # within 0.5 of 1.0 (the late 50 did not become the reference)
    assert p.out() == [("t", 10.0, 1.0), ("t", 5.0, 50.0)]
    close(p)
    assert p.out() == [("t", 12.0, 1.4)]
    rejected = p.telemetry.find("edgecollect.mqtt.points_rejected", source="mqtt.0")
    assert rejected is not None and rejected.snapshot() == {"not_finite": 1}


def test_deadband_percent() -> None:
    p = pipe("""
[[processors]]
kind = "deadband"
percent = 10.0
""")
    for t, v in ((0, 100.0), (1, 109.0), (2, 111.0), (3, 101.0), (4, 99.0)):
        p.emit(gauge("x", v, t))
    assert p.out() == [("x", 0.0, 100.0), ("x", 2.0, 111.0), ("x", 4.0, 99.0)]


AGGREGATE = """
[[processors]]
kind = "aggregate"
metrics = ["p", "c", "d"]
window = "60s"
functions = ["min", "max", "mean", "last", "count"]
"""


def test_aggregate_windows_align_and_carry_end_time_and_start_time() -> None:
    t0 = 1_800_000_000  # a multiple of 60: a wall-clock minute starts here
    p = pipe(AGGREGATE, now_s=t0 + 59)
    p.emit(gauge("p", 1.0, t0, unit="W"), gauge("p", 3.0, t0 + 30, unit="W"), gauge("p", 2, t0 + 59.999, unit="W"))
    assert p.out() == []  # the window is open
    p.emit(gauge("p", 10.0, t0 + 60, unit="W"))  # exactly on the boundary: the next window
    p.emit(gauge("p", 7.0, t0 + 50, unit="W"))  # late for a window already emitted
    rows = p.drain_table()
    got = [
        (
            r["name"],
            r["unit"],
            r["start_time_unix_nano"].timestamp() - t0,
            r["time_unix_nano"].timestamp() - t0,
            r["double_value"],
            r["int_value"],
        )
        for r in rows
    ]
    assert sorted(got) == sorted(
        [
            ("p.min", "W", 0.0, 60.0, 1.0, None),
            ("p.max", "W", 0.0, 60.0, 3.0, None),
            ("p.mean", "W", 0.0, 60.0, 2.0, None),
            ("p.last", "W", 0.0, 60.0, None, 2),
            ("p.count", "1", 0.0, 60.0, None, 3),
        ]
    )
    assert p.dropped("aggregate.0") == {"late": 1}
    p.clock.now = (t0 + 90) * S
    close(p)  # shutdown mid-window: the open window is flushed
    assert sorted((n, t - t0, v) for n, t, v in p.out()) == sorted(
        [
            ("p.min", 120.0, 10.0),
            ("p.max", 120.0, 10.0),
            ("p.mean", 120.0, 10.0),
            ("p.last", 120.0, 10.0),
            ("p.count", 120.0, 1),
        ]
    )


def test_aggregate_sums_are_never_averaged() -> None:
    p = pipe(AGGREGATE)
    p.emit(
        counter("c", 5, 10), counter("c", 7, 20), counter("d", 1, 10, kind="delta"), counter("d", 2, 20, kind="delta")
    )
    p.emit(counter("c", 2, 70))  # a reset in the next window
    assert p.out() == [("c", 60.0, 7)]
    close(p)
    assert sorted(p.out()) == [("c", 120.0, 2), ("d", 60.0, 3)]


def test_aggregate_timer_emits_an_ended_window_after_its_grace() -> None:
    p = pipe(AGGREGATE)
    p.emit(gauge("p", 4.0, 10))
    p.clock.now = 61 * S
    assert p.out() == []  # ended, but points may still be in flight (2 s grace)
    p.clock.now = 62 * S
    assert sorted(p.out()) == sorted(
        [
            ("p.min", 60.0, 4.0),
            ("p.max", 60.0, 4.0),
            ("p.mean", 60.0, 4.0),
            ("p.last", 60.0, 4.0),
            ("p.count", 60.0, 1),
        ]
    )
    p.emit(gauge("p", 5.0, 59))  # after its window was emitted: late, not a second window
    close(p)
    assert p.out() == []
    assert p.dropped("aggregate.0") == {"late": 1}


def test_aggregate_keep_raw_passes_raw_points_too() -> None:
    p = pipe(
        AGGREGATE.replace(
            'functions = ["min", "max", "mean", "last", "count"]', 'functions = ["mean"]\nkeep_raw = true'
        )
    )
    p.emit(gauge("p", 1.0, 1), gauge("p", 2.0, 2))
    close(p)
    assert p.out() == [("p", 1.0, 1.0), ("p", 2.0, 2.0), ("p.mean", 60.0, 1.5)]


def test_aggregate_holds_acks_until_its_window_is_emitted() -> None:
    p = pipe(AGGREGATE)
    p.emit(gauge("p", 1.0, 10), token=1)
    p.emit(gauge("other", 1.0, 11), token=2)  # passes, but an older message is still held
    p.ring.note_token(3)  # as the MQTT source does for a message that produced nothing
    drained = p.ring.drain()
    assert len(drained) == 1 and drained.max_token == 0  # nothing may be acked yet
    p.emit(gauge("p", 2.0, 61), token=4)  # window 0 ends: its aggregate enters the ring
    drained = p.ring.drain()
    assert len(drained) == 5 and drained.max_token == 3  # message 4 is held by window 1 now
    p.ring.mark_durable(drained.max_token)
    assert p.durable == [3]
    close(p)
    assert p.ring.drain().max_token == 4


def test_aggregate_on_receipt_acks_at_once() -> None:
    p = pipe(AGGREGATE + 'ack = "on_receipt"\n')
    p.emit(gauge("p", 1.0, 10), token=1)
    assert p.ring.drain().max_token == 1


def test_chain_runs_in_file_order_and_timer_output_goes_through_later_stages() -> None:
    p = pipe(
        AGGREGATE
        + """
[[processors]]
kind = "filter"
include = ["p.mean", "c", "d"]

[[processors]]
kind = "attributes"
set = { site = "barn-2" }
"""
    )
    p.emit(gauge("p", 1.0, 10), gauge("p", 3.0, 20))
    p.clock.now = 63 * S
    rows = p.drain_table()
    assert [(r["name"], r["attributes"], r["double_value"]) for r in rows] == [("p.mean", '{"site":"barn-2"}', 2.0)]
    assert p.dropped("filter.1") == {"not_included": 4}


def test_chain_state_counts_in_the_rings_memory_gauge() -> None:
    p = pipe(DEADBAND)
    before = p.ring.memory_bytes()
    p.emit(*(gauge("t", 1.0, 1, device=str(i)) for i in range(10)))
    assert p.ring.memory_bytes() == before + 10 * 240


def test_a_straggler_after_the_shutdown_flush_makes_a_window_of_its_own() -> None:
    p = pipe(AGGREGATE.replace('["min", "max", "mean", "last", "count"]', '["count"]'))
    p.emit(gauge("p", 1.0, 10), gauge("p", 2.0, 11))
    close(p)  # the first close, while the source still winds down
    p.emit(gauge("p", 3.0, 12))
    close(p)
    assert p.out() == [("p.count", 60.0, 2), ("p.count", 60.0, 1)]
    assert p.dropped("aggregate.0") == {}
