"""The write-behind state machine: what is held, when it is spilled, and when tokens are released.

A fake clock and a recording spool append drive `WriteBehind` directly; rings are recorders of
`mark_durable` calls. Nothing here waits on time.
"""

from __future__ import annotations

import threading

import pytest

from edgecollect.errors import SpoolFault
from edgecollect.telemetry import Telemetry
from edgecollect.writebehind import HELD_BASE, WriteBehind


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Appends:
    """The spool's append: records (signal, payload) in order; can be told to fail."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.fail_after: int | None = None

    def __call__(self, signal: str, payload: bytes, points: int) -> int | None:
        if self.fail_after is not None and len(self.written) >= self.fail_after:
            raise SpoolFault("disk full")
        self.written.append(payload)
        return len(self.written)


class RingRecorder:
    def __init__(self) -> None:
        self.durable: list[int] = []

    def mark_durable(self, token: int) -> None:
        self.durable.append(token)


class Rig:
    def __init__(self, **kwargs: float) -> None:
        self.clock = Clock()
        self.appends = Appends()
        self.backlog = 0
        self.stop = threading.Event()
        self.ring = RingRecorder()
        self.wakes = 0
        self.wb = WriteBehind(self.appends, lambda: self.backlog, Telemetry(), self.stop,
                              clock=self.clock, **kwargs)  # type: ignore[arg-type]
        self.wb.set_wake(self._wake)

    def _wake(self) -> None:
        self.wakes += 1

    def cut(self, name: str, token: int, batches: int = 1) -> bool:
        encoded = [("metrics", f"{name}.{i}".encode(), 10) for i in range(batches)]
        return self.wb.commit(encoded, [(self.ring, token)] if token else [])


def test_healthy_upstream_holds_a_cut_without_writing_and_its_ack_releases_the_tokens() -> None:
    rig = Rig()
    assert rig.cut("a", token=7)
    assert rig.appends.written == [] and rig.ring.durable == [] and rig.wakes == 1
    [held] = rig.wb.take("metrics", 1000)
    assert held.key >= HELD_BASE and held.payload == b"a.0"
    assert rig.wb.take("metrics", 1000) == []  # handed out once
    assert rig.wb.acked(held.key) is None  # never spilled: no spool copy to delete
    assert rig.ring.durable == [7]
    assert rig.appends.written == []


def test_tokens_are_released_in_cut_order_whatever_order_the_acks_come_in() -> None:
    rig = Rig()
    rig.cut("a", token=1)
    rig.cut("b", token=2, batches=2)
    a, b0, b1 = rig.wb.take("metrics", 1000)
    rig.wb.acked(b0.key)
    rig.wb.acked(b1.key)
    assert rig.ring.durable == [], "cut b is acked but cut a is not durable: token 2 covers token 1"
    rig.wb.acked(a.key)
    assert rig.ring.durable == [1, 2]


def test_a_cut_is_durable_only_when_all_its_batches_are() -> None:
    rig = Rig()
    rig.cut("a", token=5, batches=2)
    first, second = rig.wb.take("metrics", 1000)
    rig.wb.acked(first.key)
    assert rig.ring.durable == []
    rig.wb.acked(second.key)
    assert rig.ring.durable == [5]


def test_timeout_spills_every_held_batch_in_cut_order_and_releases_their_tokens() -> None:
    rig = Rig(timeout_s=5.0)
    rig.cut("a", token=1)
    rig.clock.now += 3.0
    rig.cut("b", token=2)
    [a] = rig.wb.take("metrics", 10)  # a is in flight, b not yet sent
    assert rig.wb.deadline() == 105.0
    rig.clock.now += 1.9
    rig.wb.spill_due()
    assert rig.appends.written == []
    rig.clock.now += 0.2
    rig.wb.spill_due()
    assert rig.appends.written == [b"a.0", b"b.0"], "spilled in cut order, the newer one too"
    assert rig.ring.durable == [1, 2]
    assert rig.wb.held_count() == 0 and rig.wb.deadline() is None
    # a is still flying: its spool copy must not be sent again, and its ack deletes that copy
    assert rig.wb.flying(1) and not rig.wb.flying(2)
    assert rig.wb.acked(a.key) == 1
    assert not rig.wb.flying(1)


def test_an_unhealthy_upstream_spills_the_hold_and_sends_later_cuts_to_the_spool_after_it() -> None:
    rig = Rig()
    rig.cut("a", token=1)
    rig.wb.take("metrics", 1000)
    rig.wb.failed()
    assert rig.appends.written == [b"a.0"] and rig.ring.durable == [1]
    assert not rig.cut("b", token=2), "unhealthy: the caller spools it"
    rig.wb.release_after([(rig.ring, 2)])  # what the batcher does after its own spool write
    assert rig.ring.durable == [1, 2]
    rig.wb.healthy(True)
    assert rig.cut("c", token=3)


def test_a_spool_backlog_sends_new_cuts_to_the_spool_so_it_leaves_first() -> None:
    rig = Rig()
    rig.backlog = 3
    assert not rig.cut("a", token=1)
    rig.backlog = 0
    assert rig.cut("b", token=2)


def test_a_cut_after_held_ones_is_ordered_behind_them_when_the_hold_is_full() -> None:
    rig = Rig(max_batches=2)
    rig.cut("a", token=1)
    rig.cut("b", token=2)
    assert not rig.cut("c", token=3), "the hold is full"
    assert rig.appends.written == [b"a.0", b"b.0"], "held cuts are spilled before the caller writes c"
    assert rig.ring.durable == [1, 2]


def test_held_bytes_are_bounded() -> None:
    rig = Rig(max_bytes=10)
    assert rig.cut("aaaa", token=1)  # 6 bytes
    assert not rig.cut("bbbb", token=2)  # 6 more would exceed 10
    assert rig.appends.written == [b"aaaa.0"]


def test_stopping_spills_everything_and_holds_nothing_new() -> None:
    rig = Rig()
    rig.cut("a", token=1)
    rig.stop.set()
    rig.wb.spill_due()
    assert rig.appends.written == [b"a.0"] and rig.ring.durable == [1]
    assert not rig.cut("b", token=2)


def test_a_failed_spill_keeps_the_rest_held_and_their_tokens_unreleased() -> None:
    rig = Rig()
    rig.cut("a", token=1)
    rig.cut("b", token=2)
    rig.appends.fail_after = 1
    with pytest.raises(SpoolFault):
        rig.wb.failed()
    assert rig.appends.written == [b"a.0"]
    assert rig.ring.durable == [1], "b is neither acked nor on disk"
    assert rig.wb.held_count() == 1
    rig.appends.fail_after = None
    rig.wb.spill("retry")
    assert rig.ring.durable == [1, 2]


def test_a_stream_rotation_hands_a_held_batch_out_again() -> None:
    rig = Rig()
    rig.cut("a", token=1)
    [a] = rig.wb.take("metrics", 1000)
    rig.wb.resend(a.key)
    assert [h.key for h in rig.wb.take("metrics", 1000)] == [a.key]


def test_a_cut_with_tokens_only_waits_for_the_held_cuts_before_it() -> None:
    rig = Rig()
    rig.cut("a", token=1)
    assert rig.wb.commit([], [(rig.ring, 2)])
    assert rig.ring.durable == []
    [a] = rig.wb.take("metrics", 1000)
    rig.wb.acked(a.key)
    assert rig.ring.durable == [1, 2]


def confirmed(rig: Rig) -> Rig:
    """The upstream said ok once (the cadence applies only from then on)."""
    rig.wb.healthy(True)
    return rig


def test_until_the_upstream_said_ok_once_nothing_waits_for_the_cadence() -> None:
    rig = Rig(send_interval_s=60.0)
    rig.cut("a", token=0)
    [a] = rig.wb.take("metrics", 1000)
    rig.wb.acked(a.key)
    rig.cut("b", token=0)
    assert rig.wb.take("metrics", 1000) == [], "confirmed healthy: b waits for the cadence"


def test_batches_owing_no_ack_wait_for_the_send_cadence_and_leave_together() -> None:
    rig = confirmed(Rig(send_interval_s=60.0, timeout_s=5.0))
    rig.cut("a", token=0)
    rig.clock.now += 10.0
    rig.cut("b", token=0)
    assert rig.wb.take("metrics", 1000) == [], "not due before the cadence"
    assert rig.wb.deadline() == 160.0, "the forwarder wakes when a is due"
    rig.clock.now = 160.0
    rig.wb.spill_due()
    assert rig.appends.written == [], "waiting for the cadence is not a timeout"
    assert [h.payload for h in rig.wb.take("metrics", 1000)] == [b"a.0", b"b.0"], "both leave together"


def test_a_cut_that_owes_acks_leaves_at_once_and_takes_the_waiting_ones_with_it() -> None:
    rig = confirmed(Rig(send_interval_s=60.0))
    rig.cut("host", token=0)
    rig.cut("mqtt", token=4)
    assert [h.payload for h in rig.wb.take("metrics", 1000)] == [b"host.0", b"mqtt.0"]


def test_waiting_batches_leave_once_they_fill_a_wire_batch() -> None:
    rig = confirmed(Rig(send_interval_s=60.0))
    for name in "abc":
        rig.cut(name, token=0)
    assert rig.wb.take("metrics", 30) != [], "30 points waiting fill a 30-point wire batch"
    rig2 = confirmed(Rig(send_interval_s=60.0))
    rig2.cut("a", token=0)
    assert rig2.wb.take("metrics", 30) == []


def test_a_wire_batch_takes_at_most_max_points_but_always_one_batch() -> None:
    rig = Rig()
    for name in "abc":
        rig.cut(name, token=1)
    assert [h.payload for h in rig.wb.take("metrics", 25)] == [b"a.0", b"b.0"]
    assert [h.payload for h in rig.wb.take("metrics", 5)] == [b"c.0"]


def test_a_held_batch_not_sent_within_cadence_plus_timeout_is_spilled() -> None:
    rig = confirmed(Rig(send_interval_s=60.0, timeout_s=5.0))
    rig.cut("a", token=0)
    rig.clock.now += 65.0
    rig.wb.spill_due()
    assert rig.appends.written == [b"a.0"]


def test_waiting_batches_leave_before_they_fill_the_hold() -> None:
    rig = confirmed(Rig(send_interval_s=60.0, max_batches=8))
    for name in "abc":
        rig.cut(name, token=0)
    assert rig.wb.take("metrics", 1000) == []
    rig.cut("d", token=0)
    assert len(rig.wb.take("metrics", 1000)) == 4, "half the hold is waiting: they go now"
    assert rig.appends.written == []


def test_a_cut_waiting_behind_an_earlier_deadline_does_not_wake_the_forwarder() -> None:
    """At rest (send_interval 60 s, a flush every 10 s): one wake-up per cadence, not one per flush."""
    rig = confirmed(Rig(send_interval_s=60.0))
    assert rig.wb.take("metrics", 1000) == []  # the forwarder's wire batch is known from its first take
    rig.cut("a", token=0)
    assert rig.wakes == 1, "the first waiting cut sets the forwarder's next deadline"
    for name in "bcd":
        rig.clock.now += 10.0
        rig.cut(name, token=0)
    assert rig.wakes == 1, "later cuts wait behind a's deadline"
    assert rig.wb.deadline() == 160.0
    rig.clock.now = 160.0
    assert [h.payload for h in rig.wb.take("metrics", 1000)] == [b"a.0", b"b.0", b"c.0", b"d.0"]


def test_a_cut_that_must_leave_sooner_still_wakes_the_forwarder() -> None:
    rig = confirmed(Rig(send_interval_s=60.0))
    assert rig.wb.take("metrics", 25) == []
    rig.cut("a", token=0)
    rig.cut("b", token=0)
    assert rig.wakes == 1, "20 points wait behind a's deadline"
    rig.cut("c", token=0)
    assert rig.wakes == 2, "30 points fill the 25-point wire batch: they go now"
    rig.cut("mqtt", token=3)
    assert rig.wakes == 3, "a cut that owes acks leaves at once"


def test_cuts_wake_the_forwarder_until_it_asked_for_a_wire_batch_or_before_the_first_ok() -> None:
    rig = confirmed(Rig(send_interval_s=60.0))
    rig.cut("a", token=0)
    rig.cut("b", token=0)
    assert rig.wakes == 2, "the wire batch size is not known yet"
    rig2 = Rig(send_interval_s=60.0)
    assert rig2.wb.take("metrics", 1000) == []
    rig2.cut("a", token=0)
    rig2.cut("b", token=0)
    assert rig2.wakes == 2, "no ok seen yet: every cut is due at once"


def test_a_cut_that_fills_half_the_hold_wakes_the_forwarder() -> None:
    rig = confirmed(Rig(send_interval_s=60.0, max_batches=8))
    assert rig.wb.take("metrics", 1000) == []
    for name in "abc":
        rig.cut(name, token=0)
    assert rig.wakes == 1
    rig.cut("d", token=0)
    assert rig.wakes == 2
