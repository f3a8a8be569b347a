"""Stop and reload requests for the main loop: two flags and one wake-up, safe from signal handlers.

SIGTERM/SIGINT set `stop`, SIGHUP sets `reload`; each then writes one byte to a self-pipe that the
main loop waits on (`wait(timeout_s)`). The flags are separate, so neither request can cancel the
other: the main loop consumes a reload with `take_reload()` but never clears a stop, and it checks
stop first, so a SIGTERM in the same tick as a SIGHUP always ends the process.

Why a pipe and not a `threading.Event`: a handler runs on the main thread between two bytecodes,
possibly while that thread holds the Event's internal lock (inside `wait()` or `clear()`); calling
`set()` there would deadlock. `os.write` on a non-blocking pipe takes no Python lock, and a byte
written after the loop drained the pipe wakes the next `wait()` at once, so no request is missed.
The pipe is also the interpreter's `signal.set_wakeup_fd`, so a signal delivered to another thread
still wakes the main thread's `select()`. Costs two descriptors for the life of the process; no
thread, and no periodic wake-up.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
from types import FrameType


class Wakeup:
    """Stop/reload flags plus a self-pipe the main loop sleeps on until a request or a deadline."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._stop = False
        self._reload = False
        self.stop_reason = ""  # the signal's name, logged by the main loop (no logging in handlers)

    # -- requests (any thread, or a signal handler) -----------------------------------------

    def request_stop(self, reason: str = "stop requested") -> None:
        self.stop_reason = self.stop_reason or reason
        self._stop = True
        self._poke()

    def request_reload(self) -> None:
        self._reload = True
        self._poke()

    def _poke(self) -> None:
        # A full pipe already holds a wake-up; a closed one means nobody is waiting any more.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write_fd, b"\0")

    # -- the main loop ------------------------------------------------------------------------

    @property
    def stop_requested(self) -> bool:
        return self._stop

    def take_reload(self) -> bool:
        """True once per burst of reload requests (several SIGHUPs before a reload make one)."""
        if not self._reload:
            return False
        self._reload = False
        return True

    def wait(self, timeout_s: float | None, watch: int | None = None) -> bool:
        """Sleep until a request arrives, `timeout_s` passes (None: no deadline) or the descriptor
        `watch` turns readable; True if it did (the caller reads it)."""
        if self._stop or self._reload:
            return False
        # A signal writes to the pipe twice over: from C (set_wakeup_fd, whatever thread took it)
        # and from the Python handler (_poke). If the handler has not run yet when the flags are
        # read, its own byte wakes the next wait() at once.
        fds = [self._read_fd] if watch is None else [self._read_fd, watch]
        readable, _, _ = select.select(fds, [], [], timeout_s)
        if self._read_fd in readable:
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self._read_fd, 64):
                    pass
        return watch is not None and watch in readable

    def install(self) -> None:
        """SIGTERM and SIGINT request a stop, SIGHUP a reload (main thread only)."""

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(f"received {signal.Signals(signum).name}")

        def on_hup(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        # A process-directed signal may land on any thread; Python then runs the handler on the
        # main thread only when that thread next executes bytecode, which a select() with no
        # deadline would postpone. The wake-up fd is written by the C-level handler on whatever
        # thread took the signal, so select returns and the Python handler runs at once.
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def close(self) -> None:
        with contextlib.suppress(ValueError):  # not the main thread: nothing was installed there
            previous = signal.set_wakeup_fd(-1)
            if previous not in (-1, self._write_fd):
                signal.set_wakeup_fd(previous)  # someone else's: leave it in place
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
