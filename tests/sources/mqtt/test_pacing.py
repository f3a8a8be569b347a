"""When the MQTT source asks for an early cut: never per message of a slow stream, promptly when
the broker's window holds a fast one up, and at half the window once it has been learned."""

from __future__ import annotations

from edgecollect.sources.mqtt.pacing import MIN_SILENCE_S, FlushPacer


def test_a_slow_sensor_is_left_to_the_tick() -> None:
    pacer = FlushPacer(max_unacked=1000)
    asked = []
    t = 0.0
    for owed in range(1, 60):  # one message every 0.5 s, polled every 20 ms, nothing acked yet
        pacer.message(t)
        for step in range(25):
            asked.append(pacer.reason(owed, t + step * 0.02))
        t += 0.5
    assert [r for r in asked if r] == []


def test_a_fast_stream_that_stops_with_acks_owed_is_stalled() -> None:
    pacer = FlushPacer(max_unacked=1000)
    for i in range(20):
        pacer.message(i * 0.001)
    last = 19 * 0.001
    assert pacer.reason(20, last + MIN_SILENCE_S / 2) is None
    assert pacer.reason(20, last + MIN_SILENCE_S) == "stalled"
    assert pacer.reason(0, last + 1.0) is None  # nothing owed: nothing to cut for


def test_two_stalls_at_the_same_count_teach_the_window_and_cuts_come_at_half_of_it() -> None:
    pacer = FlushPacer(max_unacked=1000)
    t = 0.0
    for stall in range(2):
        for _ in range(20):
            pacer.message(t)
            t += 0.001
        assert pacer.reason(20, t + 1.0) == "stalled"
        if stall == 0:
            assert pacer.reason(20, t + 1.1) == "stalled"  # the same stall polled again teaches nothing
            assert pacer.window is None
        t += 1.2
    assert pacer.window == 20
    pacer.message(t)
    assert pacer.reason(9, t) is None
    assert pacer.reason(10, t) == "window"


def test_pauses_at_different_counts_teach_nothing() -> None:
    pacer = FlushPacer(max_unacked=1000)
    t = 0.0
    for burst in (7, 13, 7):
        for _ in range(burst):
            pacer.message(t)
            t += 0.001
        assert pacer.reason(burst, t + 1.0) == "stalled"
        t += 1.2
    assert pacer.window is None


def test_half_of_max_unacked_always_asks() -> None:
    pacer = FlushPacer(max_unacked=100)
    pacer.message(0.0)
    assert pacer.reason(49, 0.0) is None
    assert pacer.reason(50, 0.0) == "max_unacked"
