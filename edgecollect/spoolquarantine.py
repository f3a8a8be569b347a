"""The spool's quarantine: a bounded folder for damaged or rejected batch files.

It is always a real folder inside the spool, never a link: every use opens it with O_NOFOLLOW and
works through that descriptor, and if `quarantine` is a link or not a folder, that entry is moved
aside (renamed, never followed) into a fresh real folder. Trimming touches only regular files whose
name has the agent's own pattern (`<time ns>-<reason>-<original name>`), found by lstat, so a file
put there by anyone else is never deleted.

The folder is listed once when the spool opens; afterwards the spool keeps the list in memory, so
quarantining costs one rename (and maybe an unlink), not a listing: start-up stays linear in the
number of damaged files. Moves are counted per reason and, at start-up, logged as one summary line.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from edgecollect.telemetry import Counter

log = logging.getLogger("edgecollect.spool")

_OURS = re.compile(r"(\d{1,20})-[A-Za-z0-9_:]+-.+")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _reason_tag(reason: str) -> str:
    return re.sub(r"[^A-Za-z0-9_:]", "_", reason) or "unknown"


class Quarantine:
    def __init__(self, spool_dir: Path, max_size: int, counter: Counter) -> None:
        self.spool_dir = spool_dir
        self.path = spool_dir / "quarantine"
        self.max_size = max_size
        self._counter = counter
        self._files: collections.deque[tuple[str, int]] = collections.deque()  # oldest first
        self._bytes = 0
        self._pending: collections.Counter[str] = collections.Counter()  # reasons not yet logged
        self.listings = 0  # how often the folder was listed (start-up must stay linear)
        self._lock = threading.Lock()  # the forwarder and the batcher may both quarantine

    # -- the folder itself --------------------------------------------------------------------

    @contextlib.contextmanager
    def _folder(self) -> Iterator[int]:
        """A descriptor on the real quarantine folder, made (or repaired) if needed."""
        try:
            fd = os.open(self.path, _DIR_FLAGS)
        except FileNotFoundError:
            os.mkdir(self.path, 0o750)
            fd = os.open(self.path, _DIR_FLAGS)
        except OSError:  # ELOOP (a link) or ENOTDIR (a file, FIFO, ...): never followed
            self._replace_impostor()
            fd = os.open(self.path, _DIR_FLAGS)
        try:
            yield fd
        finally:
            os.close(fd)

    def _replace_impostor(self) -> None:
        """Rename whatever sits at `quarantine` aside, make a real folder, and keep the impostor in it."""
        ns = time.time_ns()
        aside = self.spool_dir / f".quarantine-{ns}.aside"
        os.rename(self.path, aside)  # renames the link itself, whatever it points to
        os.mkdir(self.path, 0o750)
        log.warning("spool: %s was not a real folder (a link or a file); moved it aside into a new one", self.path)
        self._counter.inc("not_regular")
        with contextlib.suppress(OSError):
            os.rename(aside, self.path / f"{ns}-not_regular-quarantine")

    def open(self) -> None:
        """Make sure the folder is real, list it once, and trim it to its cap."""
        with self._lock, self._folder() as fd:
            self.listings += 1
            found: list[tuple[int, str, int]] = []
            with os.scandir(fd) as entries:
                for entry in entries:
                    match = _OURS.fullmatch(entry.name)
                    if match is None:
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat.S_ISREG(st.st_mode):
                        found.append((int(match.group(1)), entry.name, st.st_size))
            found.sort()
            self._files = collections.deque((name, size) for _, name, size in found)
            self._bytes = sum(size for _, _, size in found)
            self._trim(fd)

    # -- moving in ----------------------------------------------------------------------------

    def move(self, path: Path, reason: str, size: int, regular: bool = True, quiet: bool = False) -> None:
        """Move one spool entry in (a rename: a link or FIFO is moved as itself, never opened).

        `quiet`: count it for the next `log_summary()` instead of logging a line now (start-up).
        If the rename fails, a regular file is removed so a damaged batch never blocks the spool.
        """
        tag = _reason_tag(reason)
        self._counter.inc(tag)
        name = f"{time.time_ns()}-{tag}-{path.name}"
        try:
            with self._lock, self._folder() as fd:
                os.rename(path, name, dst_dir_fd=fd)
                if regular and size > self.max_size:
                    os.unlink(name, dir_fd=fd)  # alone over the cap: it must not flush the rest out
                elif regular:
                    self._files.append((name, size))
                    self._bytes += size
                    self._trim(fd)
        except OSError as exc:
            log.error("spool: cannot quarantine %s (%s): %s", path.name, tag, exc)
            if regular:
                with contextlib.suppress(OSError):
                    path.unlink()
            return
        if quiet:
            self._pending[tag] += 1
        else:
            log.warning("spool: quarantined %s (%s) as %s", path.name, tag, name)

    def log_summary(self) -> None:
        """One line for everything moved quietly since the last summary, with a count per reason."""
        if not self._pending:
            return
        reasons = " ".join(f"{tag}={n}" for tag, n in sorted(self._pending.items()))
        log.warning("spool: quarantined %d damaged spool files: %s", sum(self._pending.values()), reasons)
        self._pending.clear()

    def _trim(self, fd: int) -> None:
        """Oldest first, only our own regular files (checked again by lstat before the unlink)."""
        while self._bytes > self.max_size and self._files:
            name, size = self._files.popleft()
            self._bytes -= size
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=fd)
