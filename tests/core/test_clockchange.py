"""The kernel's clock-change alarm (a real timerfd, a real clock step) and the back-off of clock polls."""

from __future__ import annotations

import ctypes
import errno
import os
import select
import time

from edgecollect.clockchange import (
    SYNCED_S,
    UNSYNCED_FIRST_S,
    UNSYNCED_MAX_S,
    ClockChangeAlarm,
    ClockPollSchedule,
)


def set_wall_clock() -> None:
    """Set CLOCK_REALTIME to its own reading: a real clock set, which the kernel reports to every
    cancel-on-set timerfd, and at worst a few microseconds backwards (the time between reading and
    setting). Never a step computed from a value: on a shared test machine a wrong one moves the
    clock of every other process too. Needs CAP_SYS_TIME, which the test machine's root has."""
    try:
        time.clock_settime_ns(time.CLOCK_REALTIME, time.clock_gettime_ns(time.CLOCK_REALTIME))
    except PermissionError as e:
        raise AssertionError(f"setting the wall clock needs CAP_SYS_TIME (run the tests as root): {e}") from e


def readable(fd: int, timeout_s: float) -> bool:
    return bool(select.select([fd], [], [], timeout_s)[0])


def test_a_clock_step_wakes_the_alarm_once_and_it_rearms() -> None:
    alarm = ClockChangeAlarm.open()
    assert alarm is not None, "Linux offers timerfd with TFD_TIMER_CANCEL_ON_SET"
    try:
        assert not alarm.take()
        assert not readable(alarm.fileno(), 0.2), "time passing (or slewing) is not a clock change"
        set_wall_clock()
        assert readable(alarm.fileno(), 10.0), "the kernel reports the step"
        assert alarm.take()
        assert not alarm.take() and not readable(alarm.fileno(), 0.0), "one step, one report"
        set_wall_clock()  # again: the alarm was re-armed, so the second set is seen too
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


class _Settime:
    """timerfd_settime that refuses with `errno_value` `refusals` times, then does what the C one does."""

    def __init__(self, refusals: int, errno_value: int = errno.ECANCELED) -> None:
        self.refusals, self.errno_value, self.calls = refusals, errno_value, 0
        self._real = ctypes.CDLL(None, use_errno=True).timerfd_settime

    def __call__(self, *args: object) -> int:
        self.calls += 1
        if self.refusals > 0:
            self.refusals -= 1
            ctypes.set_errno(self.errno_value)
            return -1
        return int(self._real(*args))


def _alarm_with(settime: _Settime) -> ClockChangeAlarm:
    fd = int(ctypes.CDLL(None, use_errno=True).timerfd_create(0, os.O_CLOEXEC | os.O_NONBLOCK))
    assert fd >= 0
    return ClockChangeAlarm(fd, settime)


def test_arming_raced_by_a_clock_set_is_tried_again() -> None:
    # The kernel answers ECANCELED when the clock was set while arming; the agent once died of it.
    settime = _Settime(refusals=3)
    alarm = _alarm_with(settime)
    try:
        assert settime.calls == 4 and not alarm.broken
        set_wall_clock()
        assert readable(alarm.fileno(), 10.0) and alarm.take(), "armed after the refusals"
    finally:
        alarm.close()


def test_an_alarm_that_cannot_be_rearmed_says_so_instead_of_raising() -> None:
    settime = _Settime(refusals=0)
    alarm = _alarm_with(settime)
    try:
        settime.refusals, settime.errno_value = 1, errno.EINVAL  # the next arming fails for good
        set_wall_clock()
        assert readable(alarm.fileno(), 10.0)
        assert alarm.take(), "the change itself is still reported"
        assert alarm.broken
    finally:
        alarm.close()
