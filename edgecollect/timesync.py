"""Honest timestamps on boards without a real-time clock (design.md invariant 7): clock detection.

Owns two things:

1. *Detection*: is the wall clock synchronised? `SyncDetector` asks the kernel through adjtimex(2)
   (a read-only call: `modes` = 0) — NTP daemons (systemd-timesyncd, chrony, ntpd) clear the
   kernel's STA_UNSYNC bit once they discipline the clock, and the call returns TIME_ERROR while it
   is set. A wall clock earlier than this release's date is unsynchronised whatever the kernel says.
   Its `__call__` is what `edgecollect.clock.Clock(synced=...)` takes.
2. *Noticing the step*: `ClockWatcher.poll()` compares the wall-minus-boottime offset between polls;
   when it jumps (NTP's first step on a Pi that booted at a stale date) or the clock becomes synced,
   it returns a `ClockStep` saying how far pre-step times must move, and for which boot.

Applying a step to rings and spooled batches is the batch format's (edgecollect/format/clockrepair.py).

Why the offset and not a per-sample monotonic column: within one boot, wall = boottime + offset,
and the offset only changes when the clock is set. So a sample stamped before a step at wall time t
belongs at t + delta; the watcher only needs to remember the offset, not a second column per point.
CLOCK_BOOTTIME rather than CLOCK_MONOTONIC, so a suspend is not mistaken for a step.

Never: sets the clock, needs privileges, or raises from a detector call (a failed adjtimex falls
back to the build-date rule).
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

# A wall clock before this is certainly wrong: no edgecollect release runs before it was built.
# packaging/build-deb.py raises it in the packaged copy to the source date (HEAD's commit time).
BUILD_DATE_NS = 1_793_491_200 * 1_000_000_000  # 2026-11-01T00:00:00Z

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")

# <sys/timex.h>
STA_UNSYNC = 0x0040
TIME_ERROR = 5

# A change of the wall-minus-boottime offset smaller than this between two polls is NTP slewing or
# scheduling noise, not a step.
DEFAULT_STEP_THRESHOLD_NS = 1_000_000_000


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class Timex(ctypes.Structure):
    """`struct timex` as glibc's `adjtimex` symbol takes it (c_long sized fields, 11 ints of padding)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


@dataclass(frozen=True, slots=True)
class KernelClock:
    """What adjtimex(2) says about the system clock."""

    state: int  # return value: TIME_OK (0) .. TIME_ERROR (5)
    status: int  # STA_* bits
    maxerror_us: int
    esterror_us: int
    tick_us: int
    tolerance: int
    constant: int
    precision_us: int

    @property
    def synced(self) -> bool:
        return not (self.status & STA_UNSYNC) and self.state != TIME_ERROR


_libc: ctypes.CDLL | None = None


def read_kernel_clock() -> KernelClock:
    """adjtimex(2) with a zeroed struct (modes = 0: read only). Raises OSError when unavailable."""
    global _libc
    if _libc is None:
        # The running interpreter's own symbols include libc's; ctypes.util.find_library would
        # run `ldconfig -p` in a subprocess, which a sandboxed service should not need.
        _libc = ctypes.CDLL(None, use_errno=True)
    tx = Timex()  # ctypes zero-fills: modes = 0 asks for nothing to be changed
    state = int(_libc.adjtimex(ctypes.byref(tx)))
    if state < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"adjtimex: {os.strerror(err)}")
    return KernelClock(
        state, tx.status, tx.maxerror, tx.esterror, tx.tick, tx.tolerance, tx.constant, tx.precision
    )


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This boot's random id (changes at every boot); "" where the kernel does not offer one."""
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""


# How to tell a synchronised clock (config agent.clock); not spool.SyncMode, which is about fsync.
ClockCheck = Literal["auto", "kernel", "build_date", "assume_synced"]


class SyncDetector:
    """Callable telling whether the wall clock can be trusted; pass it to `Clock(synced=...)`.

    Modes: `kernel` trusts adjtimex (plus the build-date floor); `build_date` only checks the floor
    (for containers and hosts whose clock is disciplined outside the kernel's NTP state); `auto` is
    `kernel` where adjtimex works, else `build_date`; `assume_synced` never flags (tests, lab rigs).
    The answer is cached for `cache_s` because it is asked once per sample.
    """

    def __init__(
        self,
        mode: ClockCheck = "auto",
        *,
        floor_ns: int = BUILD_DATE_NS,
        cache_s: float = 1.0,
        read_kernel: Callable[[], KernelClock] = read_kernel_clock,
        wall_ns: Callable[[], int] = time.time_ns,
        mono_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.mode: ClockCheck = mode
        self._floor_ns = floor_ns
        self._cache_ns = int(cache_s * 1e9)
        self._read_kernel = read_kernel
        self._wall_ns = wall_ns
        self._mono_ns = mono_ns
        self._lock = threading.Lock()
        self._value = False
        self._expires: int | None = None
        self._kernel_broken = False

    def __call__(self) -> bool:
        now = self._mono_ns()
        with self._lock:
            if self._expires is None or now >= self._expires:
                self._value = self._evaluate()
                self._expires = now + self._cache_ns
            return self._value

    def invalidate(self) -> None:
        """Forget the cached answer (the watcher calls this when it sees a step)."""
        with self._lock:
            self._expires = None

    def _evaluate(self) -> bool:
        if self.mode == "assume_synced":
            return True
        if self._wall_ns() < self._floor_ns:
            return False
        if self.mode == "build_date" or self._kernel_broken:
            return True
        try:
            return self._read_kernel().synced
        except OSError as exc:
            if self.mode == "kernel":
                return False
            log.warning("adjtimex unavailable (%s); judging the clock by the build date only", exc)
            self._kernel_broken = True
            return True


@dataclass(frozen=True, slots=True)
class ClockStep:
    """The wall clock moved by `delta_ns` relative to boot time (or became synchronised).

    Rows of boot `boot_id` flagged unsynced and stamped before `before_ns` (a wall time on the old
    clock; None: no bound) belong at `time + delta_ns`. `synced` says whether the clock is
    trustworthy now: only then do repaired rows gain FLAG_TIME_REPAIRED. Flagged rows stamped on
    the new clock before the watcher noticed, `before_ns <= time < until_ns`, are right already:
    they are only marked.
    """

    delta_ns: int
    before_ns: int | None
    boot_id: str
    synced: bool
    until_ns: int | None = None


def _boottime_ns() -> int:
    return time.clock_gettime_ns(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


class ClockWatcher:
    """Polled from the runtime's main loop (every second or so); reports steps as `ClockStep`s.

    A step is reported when the wall-minus-boottime offset moves by more than `threshold_ns` since
    the previous poll, and once more (possibly with delta 0) when the clock turns synchronised, so
    every pre-sync row ends up either moved or confirmed and marked repaired.
    """

    def __init__(
        self,
        synced: Callable[[], bool],
        *,
        boot_id: str | None = None,
        threshold_ns: int = DEFAULT_STEP_THRESHOLD_NS,
        wall_ns: Callable[[], int] = time.time_ns,
        boot_ns: Callable[[], int] = _boottime_ns,
    ) -> None:
        self._synced = synced
        self.boot_id = read_boot_id() if boot_id is None else boot_id
        self._threshold_ns = threshold_ns
        self._wall_ns = wall_ns
        self._boot_ns = boot_ns
        self._offset = self._read_offset()[0]
        self._was_synced = synced()

    def _read_offset(self) -> tuple[int, int]:
        boot = self._boot_ns()
        wall = self._wall_ns()
        return wall - boot, boot

    @property
    def synced(self) -> bool:
        return self._was_synced

    def poll(self) -> ClockStep | None:
        old_offset = self._offset
        offset, boot = self._read_offset()
        delta = offset - old_offset
        stepped = abs(delta) > self._threshold_ns
        if isinstance(self._synced, SyncDetector) and stepped:
            self._synced.invalidate()  # a step is exactly when the kernel state may have changed
        synced = self._synced()
        turned_synced = synced and not self._was_synced
        self._was_synced = synced
        if not stepped and not turned_synced:
            # Slewing: follow the offset slowly so that many small moves never add up to a "step".
            self._offset = offset
            return None
        self._offset = offset
        # Rows stamped on the old clock carry times up to "now" on that clock. A row stamped after
        # the step is at least boot_at_previous_poll + new offset, so a forward step larger than the
        # poll interval separates the two; a small or backward step leaves a window of ambiguity
        # no wider than the poll interval (documented in packaging/README.md).
        before = boot + old_offset
        if not stepped:
            delta = 0
            before = boot + offset
        log.info(
            "wall clock %s by %.3f s (boot %s); repairing pre-step timestamps",
            "stepped" if stepped else "confirmed synchronised",
            delta / 1e9,
            self.boot_id or "?",
        )
        return ClockStep(delta, before, self.boot_id, synced, boot + offset if synced else None)


__all__ = [
    "BUILD_DATE_NS",
    "ClockStep",
    "ClockWatcher",
    "KernelClock",
    "SyncDetector",
    "read_boot_id",
    "read_kernel_clock",
]
