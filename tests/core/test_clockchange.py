"""The kernel's clock-change alarm (a real timerfd, a real clock step) and the back-off of clock polls."""

from __future__ import annotations

import ctypes
import os
import select

from edgecollect.clockchange import (
    SYNCED_S,
    UNSYNCED_FIRST_S,
    UNSYNCED_MAX_S,
    ClockChangeAlarm,
    ClockPollSchedule,
)
from edgecollect.timesync import Timex

ADJ_SETOFFSET = 0x0100  # <sys/timex.h>
ADJ_NANO = 0x2000


def step_wall_clock_ns(delta_ns: int) -> None:
    """Step CLOCK_REALTIME by `delta_ns` (±1 ns here: a real step, undone by the next call).
    Needs CAP_SYS_TIME, which the test machine's root has."""
    libc = ctypes.CDLL(None, use_errno=True)
    tx = Timex()
    tx.modes = ADJ_SETOFFSET | ADJ_NANO
    tx.time.tv_sec, tx.time.tv_usec = divmod(delta_ns, 1_000_000_000)  # usec holds ns under ADJ_NANO
    if libc.clock_adjtime(0, ctypes.byref(tx)) < 0:
        err = ctypes.get_errno()
        raise AssertionError(f"clock_adjtime(ADJ_SETOFFSET) failed: {os.strerror(err)}")


def readable(fd: int, timeout_s: float) -> bool:
    return bool(select.select([fd], [], [], timeout_s)[0])


def test_a_clock_step_wakes_the_alarm_once_and_it_rearms() -> None:
    alarm = ClockChangeAlarm.open()
    assert alarm is not None, "Linux offers timerfd with TFD_TIMER_CANCEL_ON_SET"
    try:
        assert not alarm.take()
        assert not readable(alarm.fileno(), 0.2), "time passing (or slewing) is not a clock change"
        step_wall_clock_ns(1)
        assert readable(alarm.fileno(), 10.0), "the kernel reports the step"
        assert alarm.take()
        assert not alarm.take() and not readable(alarm.fileno(), 0.0), "one step, one report"
        step_wall_clock_ns(-1)  # and back: the alarm was re-armed, so the second step is seen too
        assert readable(alarm.fileno(), 10.0)
        assert alarm.take()
    finally:
        alarm.close()


def test_unsynchronised_polls_back_off_and_restart_after_a_clock_change() -> None:
    polls = ClockPollSchedule(notified=True)
    seen = [polls.after_poll(synced=False) for _ in range(7)]
    assert seen == [UNSYNCED_FIRST_S, 2.0, 4.0, 8.0, 16.0, UNSYNCED_MAX_S, UNSYNCED_MAX_S]
    polls.clock_changed()
    assert polls.after_poll(synced=False) == UNSYNCED_FIRST_S


def test_synchronised_polls_are_slow_and_a_loss_of_sync_polls_quickly_again() -> None:
    polls = ClockPollSchedule(notified=True)
    for _ in range(6):
        polls.after_poll(synced=False)
    assert polls.after_poll(synced=True) == SYNCED_S
    assert polls.after_poll(synced=False) == UNSYNCED_FIRST_S


def test_without_the_alarm_an_unsynchronised_clock_is_polled_every_second() -> None:
    # Then only the poll can see a step, and its interval bounds how ambiguous the step's edge is.
    polls = ClockPollSchedule(notified=False)
    assert [polls.after_poll(synced=False) for _ in range(8)] == [UNSYNCED_FIRST_S] * 8
    assert polls.after_poll(synced=True) == SYNCED_S
