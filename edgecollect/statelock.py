"""One agent per state_dir (design.md invariant 8): an exclusive lock held for the life of `run`.

The lock is `flock(LOCK_EX | LOCK_NB)` on `<state_dir>/agent.lock`, which holds the owner's pid as
text for the message a second agent prints. The kernel drops the lock when the process ends, kill -9
included, so a stale file never blocks a restart; the file itself is left in place (removing it
would let a third agent lock a new inode while the second still holds the old one).

Only `run` takes it. `status` and `spool ls/show/export` only read, so they work beside a running
agent without it. A second `run` is refused before it touches anything else in the state_dir (the
status socket, the spool).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "agent.lock"
_PID_WAIT_S = 1.0  # the holder writes its pid just after it locks: wait that long to name it


class StateDirLocked(Exception):
    """Another agent holds the state_dir; the message names it."""


class StateLock:
    """Held from `acquire()` until `release()` (or the process's end)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None
        self._writable = False

    def acquire(self) -> None:
        """Create the state_dir if needed and lock it; StateDirLocked if another process has it.

        OSError when the folder or the lock file cannot be made (permissions, read-only disk).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, writable = _open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise StateDirLocked(
                f"state_dir {self.path.parent} is in use by another edgecollect agent ({who} holds {self.path}); "
                "only one agent may run per state_dir (use another [agent] state_dir, or stop that agent)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        self._writable = writable

    def release(self) -> None:
        if self._fd is not None:
            if self._writable:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _open_lock_file(path: Path) -> tuple[int, bool]:
    """(descriptor, writable). O_NOFOLLOW: a link planted as agent.lock must not make us write elsewhere.

    Made by root in a folder owned by the service's user (`sudo edgecollect run` with the service
    stopped), the file is handed to that user, so the service can lock it again. If it still cannot
    be opened for writing, a read-only descriptor locks just as well; only the pid is not recorded.
    """
    flags = os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | flags, 0o640)
    except PermissionError:
        return os.open(path, os.O_RDONLY | flags), False
    if os.geteuid() == 0:
        owner = os.stat(path.parent)
        if owner.st_uid != 0 and os.fstat(fd).st_uid == 0:
            with contextlib.suppress(OSError):
                os.fchown(fd, owner.st_uid, owner.st_gid)
    return fd, True


def _holder(fd: int) -> int | None:
    """The pid written by the lock's holder, waiting briefly for a holder that has just locked."""
    deadline = time.monotonic() + _PID_WAIT_S
    while True:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return int(text)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)
