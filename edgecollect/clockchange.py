"""When to ask the ClockWatcher (timesync.py) whether the wall clock stepped, without a 1-s poll.

The watcher finds a step by comparing wall time against boot time between two polls, so a step
smaller than the poll interval (or a backward one) is ambiguous for one interval; that is why the
main loop polled every second for as long as the clock was unsynchronised — which, on a Pi without
a real-time clock that has no network yet, or in a container whose clock is never "synchronised"
in the kernel's eyes, is for hours: 60 wake-ups a minute of the main thread for nothing.

Two things replace it:

- `ClockChangeAlarm`: a timerfd on CLOCK_REALTIME armed with TFD_TIMER_CANCEL_ON_SET, which the
  kernel makes readable whenever the wall clock is *set* (settimeofday, clock_settime, adjtimex
  ADJ_SETOFFSET: every NTP step, manual `date -s`, a resume from suspend). Slewing does not set the
  clock, and a slew is never a step. The main loop waits on it beside its own wake-up pipe, so a
  step is seen at once — a narrower ambiguity window than the old one-second poll.
- `ClockPollSchedule`: what is left to poll for is the kernel turning the clock "synchronised"
  without a step (STA_UNSYNC cleared while slewing), which only adjtimex tells. Only the repair of
  rows already stamped depends on it (new samples take the sync state from the detector at once),
  so those polls back off from 1 s to UNSYNCED_MAX_S while nothing happens, and start over at 1 s
  after any clock change. Without the alarm (not Linux, or timerfd refused by a sandbox), the
  schedule keeps the 1-s poll: then it is the only way to see a step.

Never changes the clock; needs no privilege. Costs one descriptor.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

SYNCED_S = 30.0  # synchronised: only a loss of sync is left to notice (rows stamped then are not flagged)
UNSYNCED_FIRST_S = 1.0
UNSYNCED_MAX_S = 30.0
ARM_ATTEMPTS = 8  # arming again after clock sets that race it; more in a row is an operator loop

# <sys/timerfd.h>, <time.h>; TFD_CLOEXEC and TFD_NONBLOCK are O_CLOEXEC and O_NONBLOCK on every arch.
CLOCK_REALTIME = 0
TFD_TIMER_ABSTIME = 1
TFD_TIMER_CANCEL_ON_SET = 2


class _Timespec(ctypes.Structure):
    # time_t is a C long on the ABIs glibc's plain timerfd_settime symbol serves (the 32-bit one too).
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


# Far enough that the timer itself never expires: only a clock change makes the descriptor readable.
_NEVER_S = 2**31 - 1 if ctypes.sizeof(ctypes.c_long) == 4 else 2**62


class ClockAlarm(Protocol):
    """What the main loop waits on for clock changes (ClockChangeAlarm; tests drive their own)."""

    def fileno(self) -> int: ...

    def take(self) -> bool: ...

    def close(self) -> None: ...

    @property
    def broken(self) -> bool: ...


class ClockChangeAlarm:
    """A descriptor that turns readable when the wall clock is set; `take()` says whether it was."""

    def __init__(self, fd: int, settime: Callable[..., int]) -> None:
        self._fd = fd
        self._settime = settime
        self.broken = False  # set when re-arming failed: the alarm reports nothing any more
        self._arm()

    @classmethod
    def open(cls) -> ClockChangeAlarm | None:
        """The alarm, or None where the kernel or the C library does not offer one."""
        try:
            libc = ctypes.CDLL(None, use_errno=True)  # the interpreter's own libc symbols, no ldconfig
            create, settime = libc.timerfd_create, libc.timerfd_settime
        except (OSError, AttributeError):
            return None
        create.argtypes = [ctypes.c_int, ctypes.c_int]
        create.restype = ctypes.c_int
        settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        settime.restype = ctypes.c_int
        fd = int(create(CLOCK_REALTIME, os.O_CLOEXEC | os.O_NONBLOCK))
        if fd < 0:
            log.info("timerfd unavailable (%s): the clock is polled every second while unsynchronised",
                     os.strerror(ctypes.get_errno()))
            return None
        try:
            return cls(fd, settime)
        except OSError as exc:
            os.close(fd)
            log.info("clock-change timer refused (%s): the clock is polled every second while unsynchronised",
                     exc)
            return None

    def _arm(self) -> None:
        spec = _Itimerspec()
        spec.it_value.tv_sec = _NEVER_S
        # The kernel refuses to arm with ECANCELED when the clock was set since the timer last
        # looked (a set racing this call): that set is already reported, so arming again is right.
        for _ in range(ARM_ATTEMPTS):
            if self._settime(self._fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, ctypes.byref(spec), None) == 0:
                return
            err = ctypes.get_errno()
            if err != errno.ECANCELED:
                break
        raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def fileno(self) -> int:
        return self._fd

    def take(self) -> bool:
        """True once for each burst of clock changes since the last call (re-arms the alarm)."""
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return False
        except OSError as exc:
            if exc.errno != errno.ECANCELED:
                raise
        try:
            self._arm()  # cancelled (or, improbably, expired): armed again for the next change
        except OSError as exc:
            # Not armed, so no later change would be reported: say so, and let the caller fall
            # back to polling every second rather than trusting a silent alarm.
            log.warning("clock-change timer could not be re-armed (%s): polling the clock instead", exc)
            self.broken = True
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class ClockPollSchedule:
    """Seconds until the main loop next polls the ClockWatcher, from what the last poll saw."""

    def __init__(self, notified: bool, *, first_s: float = UNSYNCED_FIRST_S, max_s: float = UNSYNCED_MAX_S) -> None:
        self._notified = notified  # a ClockChangeAlarm reports steps, so polls may back off
        self._first_s = first_s
        self._max_s = max_s
        self._next_s = first_s

    def after_poll(self, synced: bool) -> float:
        if synced:
            self._next_s = self._first_s  # a later loss of sync starts with quick polls again
            return SYNCED_S
        if not self._notified:
            return self._first_s
        interval = self._next_s
        self._next_s = min(self._max_s, interval * 2)
        return interval

    def clock_changed(self) -> None:
        """The clock was set: the kernel's sync state may change soon after, so poll quickly again."""
        self._next_s = self._first_s
