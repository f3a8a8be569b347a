"""The durable queue of batch files on disk (design.md, "spool").

Owns durability, the byte cap, age eviction, quarantine and recovery. It never blocks start-up on a
damaged file and never exceeds its byte cap (a batch larger than the cap is refused and counted).

One file per batch, `<seq as 16 hex digits>.ecb`, in `<state_dir>/spool/`; the format, and how a
file is read without trusting it (regular files only, header and size before any read, the CRC
streamed), are spoolfile.py's. A batch larger than the cap (the largest this spool can write) is
damaged.

A write goes to `.<seq>.tmp`, is fsync'd and renamed to its final name; with `sync = "file+dir"`
the directory is fsync'd too. Only then is the batch acknowledged to its sources. A file is valid
only if its size, magic, version and CRC all check out, so a torn write can never be read as a
batch. Damaged files go to `quarantine/` (bounded, spoolquarantine.py) and are counted; entries
that are not regular files (FIFOs, devices, links, folders named like batches) are moved there as
themselves, never opened or followed.

Why one fsync is enough by default (`sync = "file"`, SD cards wear with every sync): ext4, f2fs,
xfs and btrfs make a new file's name durable with the file's own fsync, so after a power cut an
acknowledged batch exists under its final name or, if the rename was lost, under its temp name.
Recovery therefore *promotes* a temp file that verifies (it was complete when fsync'd) and removes
one that does not (it was never acknowledged). `file+dir` adds the directory fsync that strict
POSIX asks for, for filesystems that do not behave that way.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edgecollect import spoolfile
from edgecollect.errors import SpoolFault
from edgecollect.format import SIGNALS
from edgecollect.spoolfile import (
    HEADER,
    MAGIC,
    OVERHEAD,
    SUFFIX,
    TRAILER,
    VERSION,
    Damaged,
    SpooledBatch,
    frame,
    unframe,
)
from edgecollect.spoolquarantine import Quarantine
from edgecollect.telemetry import Telemetry

if TYPE_CHECKING:
    from edgecollect.downsample import Downsampler

# The format lives in spoolfile.py; these names stay importable from here as before.
__all__ = [
    "HEADER", "MAGIC", "OVERHEAD", "SIGNALS", "SUFFIX", "TRAILER", "VERSION",
    "Damaged", "Spool", "SpoolStats", "SpooledBatch", "SyncMode", "WhenFull", "frame", "unframe",
]
log = logging.getLogger(__name__)

WhenFull = Literal["drop_oldest", "drop_newest", "downsample"]
SyncMode = Literal["file", "file+dir"]


@dataclass(frozen=True, slots=True)
class SpoolStats:
    files: int
    bytes: int
    points: int
    oldest_age_s: float


class Spool:
    def __init__(
        self,
        directory: Path,
        telemetry: Telemetry,
        max_size: int = 256 * 1024**2,
        max_age_s: float = 30 * 86400.0,
        when_full: WhenFull = "drop_oldest",
        quarantine_max_size: int | None = None,
        sync: SyncMode = "file",
        downsample_window_s: float = 300.0,
    ) -> None:
        self.sync: SyncMode = sync
        self.directory = Path(directory)
        self.quarantine_dir = self.directory / "quarantine"
        self.max_size = max_size
        self.max_age_s = max_age_s
        self.when_full: WhenFull = when_full
        self.quarantine_max_size = quarantine_max_size if quarantine_max_size is not None else max_size // 10
        self._index: dict[int, SpooledBatch] = {}
        self._bytes = 0
        self._next_seq = 1
        self._lock = threading.Lock()
        component = "spool"
        self._written = telemetry.counter(component, "batches_written")
        self._written_bytes = telemetry.counter(component, "bytes_written", unit="By")
        self._dropped_batches = telemetry.counter(component, "batches_dropped", "reason")
        self._dropped_points = telemetry.counter(component, "points_dropped", "reason")
        self._quarantined = telemetry.counter(component, "quarantined", "reason")
        self._acked = telemetry.counter(component, "batches_acked")
        self._temp_removed = telemetry.counter(component, "incomplete_removed")
        self._promoted = telemetry.counter(component, "temp_promoted")
        telemetry.gauge(component, "files", lambda: len(self._index), unit="{file}")
        telemetry.gauge(component, "bytes", lambda: self._bytes, unit="By")
        telemetry.gauge(component, "oldest_age", lambda: self.stats().oldest_age_s, unit="s")
        self._quarantine = Quarantine(self.directory, self.quarantine_max_size, self._quarantined)
        self._downsampler: Downsampler | None = None
        if when_full == "downsample":  # imported only when configured
            from edgecollect.downsample import Downsampler

            self._downsampler = Downsampler(self, downsample_window_s, telemetry)

    @property
    def largest_batch(self) -> int:
        """The largest file this spool can write: anything bigger on disk is damaged, never read whole."""
        return spoolfile.largest_batch(self.max_size)

    # -- start-up -----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folders, verify every file, quarantine the damaged ones. Never raises on data.

        One listing of the spool and one of its quarantine, a header read and a streamed CRC per
        file, one summary line for everything quarantined: linear in files, bounded in memory.
        """
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._quarantine.open()
        except OSError as exc:
            raise SpoolFault(f"cannot create spool directory {self.directory}: {exc}") from exc
        temps: builtins.list[tuple[str, bool]] = []
        candidates: builtins.list[tuple[str, bool]] = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name == self._quarantine.path.name:
                    continue
                regular = entry.is_file(follow_symlinks=False)
                if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                    temps.append((entry.name, regular))
                elif regular or not entry.is_dir(follow_symlinks=False) or entry.name.endswith(SUFFIX):
                    candidates.append((entry.name, regular))  # other folders are not ours to judge
        promoted = self._recover_temp_files(sorted(temps))
        entries_now = dict(candidates) | dict.fromkeys(promoted, True)  # a promotion replaced the entry
        max_seq = 0
        for name, regular in sorted(entries_now.items()):
            path = self.directory / name
            seq = spoolfile.seq_of(name)
            try:
                if not regular:
                    raise spoolfile.NotRegular()
                if seq is None:
                    raise Damaged("bad_name")
                batch = spoolfile.verify(path, self.largest_batch)
                if batch.id != seq:
                    raise Damaged("name_mismatch")
            except spoolfile.NotRegular as exc:
                self._quarantine.move(path, str(exc), 0, regular=False, quiet=True)
                continue
            except (Damaged, OSError) as exc:
                reason = str(exc) if isinstance(exc, Damaged) else f"unreadable:{exc.errno}"
                self._quarantine.move(path, reason, self._size_of(path), quiet=True)
                continue
            max_seq = max(max_seq, seq)
            self._index[seq] = batch
            self._bytes += batch.size
        self._quarantine.log_summary()
        self._next_seq = max_seq + 1
        self.expire()
        self._enforce_cap()
        stats = self.stats()
        log.info("spool %s: %d batches, %d bytes, %d points", self.directory, stats.files, stats.bytes, stats.points)

    @staticmethod
    def _size_of(path: Path) -> int:
        try:
            return os.lstat(path).st_size
        except OSError:
            return 0

    def _recover_temp_files(self, temps: builtins.list[tuple[str, bool]]) -> builtins.list[str]:
        """Promote temp files that verify (fsync'd, rename lost); remove torn ones (never acked).

        Returns the names of the promoted batches. A temp that is not a regular file is moved aside.
        """
        promoted: builtins.list[str] = []
        for name, regular in temps:
            path = self.directory / name
            if not regular:
                self._quarantine.move(path, "not_regular", 0, regular=False, quiet=True)
                continue
            seq_text = name[1:].split(".", 1)[0]
            try:
                batch = spoolfile.verify(path, self.largest_batch)
                complete = f"{batch.id:016x}" == seq_text
            except spoolfile.NotRegular:
                self._quarantine.move(path, "not_regular", 0, regular=False, quiet=True)
                continue
            except (Damaged, OSError):
                complete = False
            if complete:
                final = f"{seq_text}{SUFFIX}"
                try:
                    os.replace(path, self.directory / final)  # a rewrite's temp replaces the batch it rewrote
                    self._promoted.inc()
                    promoted.append(final)
                    continue
                except OSError as exc:
                    log.error("spool: cannot promote %s: %s", name, exc)
            self._unlink(path)
            self._temp_removed.inc()
        return promoted

    # -- writing ------------------------------------------------------------------------------

    def append(self, signal: str, payload: bytes, points: int) -> int | None:
        """Make a batch durable. Returns its id, or None when the full-spool policy refused it."""
        size = OVERHEAD + len(payload)
        with self._lock:
            if size > self.max_size:
                self._count_drop("too_large", 1, points)
                return None
            if not self._make_room(size):
                self._count_drop("drop_newest", 1, points)
                return None
            seq = self._next_seq
            self._next_seq += 1
        batch = self._write_file(seq, signal, time.time_ns(), points, payload)  # outside the lock: fsync
        with self._lock:
            self._index[seq] = batch
            self._bytes += batch.size
        return seq

    def _make_room(self, size: int) -> bool:
        """Evict per policy until `size` more bytes fit. Caller holds the lock."""
        if self._downsampler is not None and self._bytes + size > self.max_size:
            self._downsampler.make_room(size)  # coarsen the oldest first; drop only if not enough
        while self._bytes + size > self.max_size:
            if self.when_full == "drop_newest" or not self._index:
                return False
            oldest = self._index[min(self._index)]
            self._remove(oldest)
            self._count_drop("drop_oldest", 1, oldest.points)
        return True

    def _enforce_cap(self) -> None:
        """A cap lowered between runs applies at once, by the full-spool policy, not at the next write.

        One pass over the ids in order and one log line, however many batches go.
        """
        batches = points = 0
        with self._lock:
            if self._downsampler is not None and self._bytes > self.max_size:
                self._downsampler.make_room(0)
            # downsample drops the oldest of what coarsening could not fit
            reason = "drop_newest" if self.when_full == "drop_newest" else "drop_oldest"
            order = sorted(self._index, reverse=reason == "drop_newest")
            for seq in order:
                if self._bytes <= self.max_size:
                    break
                victim = self._index[seq]
                self._remove(victim)
                self._count_drop(reason, 1, victim.points, quiet=True)
                batches, points = batches + 1, points + victim.points
        if batches:
            log.warning("spool: over its cap of %d bytes: dropped %d batch(es), %d points (%s)",
                        self.max_size, batches, points, reason)

    def expire(self) -> int:
        """Drop batches older than max_age; returns how many.

        Cheap enough for every batcher tick: no listing, no sort; the index is in id order (ids are
        handed out in order and inserted so at start-up) and the oldest batch is looked at first.
        """
        cutoff = time.time_ns() - int(self.max_age_s * 1e9)
        removed = points = 0
        with self._lock:
            while self._index:
                batch = next(iter(self._index.values()))
                if batch.created_ns >= cutoff:
                    break
                self._remove(batch)
                self._count_drop("max_age", 1, batch.points, quiet=True)
                removed, points = removed + 1, points + batch.points
        if removed:
            log.warning("spool: dropped %d batch(es), %d points older than max_age", removed, points)
        return removed

    # -- the exporter's side ------------------------------------------------------------------

    def list(self, signal: str | None = None) -> list[SpooledBatch]:
        with self._lock:
            batches = sorted(self._index.values(), key=lambda b: b.id)
        return [b for b in batches if signal is None or b.signal == signal]

    def oldest(self, n: int, signal: str | None = None) -> builtins.list[SpooledBatch]:
        return self.list(signal)[:n]

    def get(self, batch_id: int) -> SpooledBatch | None:
        with self._lock:
            return self._index.get(batch_id)

    def read(self, batch_id: int) -> bytes | None:
        """The verified Arrow IPC payload of a batch; None if it is gone or was found damaged."""
        batch = self.get(batch_id)
        if batch is None:
            return None
        try:
            _, payload = spoolfile.read(batch.path, self.largest_batch)
        except FileNotFoundError:
            with self._lock:
                self._forget(batch)
            return None
        except (Damaged, OSError) as exc:
            self.quarantine(batch_id, str(exc) if isinstance(exc, Damaged) else "unreadable")
            return None
        return payload

    def rewrite(self, batch_id: int, payload: bytes) -> bool:
        """Replace a batch's payload in place (same id, same order), atomically and durably.

        Used to repair timestamps after a clock step. False if the batch is gone (acked meanwhile).
        """
        with self._lock:
            batch = self._index.get(batch_id)
        if batch is None:
            return False
        data = frame(batch.id, batch.signal, batch.created_ns, batch.points, payload)
        temp = self.directory / f".{batch.id:016x}.rewrite.tmp"
        try:
            spoolfile.write_synced(temp, data)
            with self._lock:
                if batch_id not in self._index:
                    self._unlink(temp)
                    return False
                os.rename(temp, batch.path)
                self._bytes += len(data) - batch.size
                self._index[batch_id] = SpooledBatch(
                    batch.id, batch.signal, batch.points, batch.created_ns, len(data), batch.path
                )
            if self.sync == "file+dir":
                spoolfile.fsync_dir(self.directory)
        except OSError as exc:
            self._unlink(temp)
            raise SpoolFault(f"cannot rewrite spool batch {batch.path}: {exc}") from exc
        return True

    def ack(self, batch_id: int) -> None:
        """The upstream acknowledged this batch: delete it. Unknown ids are ignored."""
        with self._lock:
            batch = self._index.get(batch_id)
            if batch is None:
                return
            self._remove(batch)
        self._acked.inc()

    def merged(self, batch_id: int, points: int, size: int, parts: builtins.list[int]) -> None:
        """Compaction hook (compaction.py): `batch_id`'s file now holds itself and `parts`, which go."""
        with self._lock:
            batch = self._index.get(batch_id)
            if batch is not None:
                self._bytes += size - batch.size
                self._index[batch_id] = SpooledBatch(batch_id, batch.signal, points, batch.created_ns, size,
                                                     batch.path)
            for part in parts:
                if (gone := self._index.get(part)) is not None:
                    self._remove(gone)

    def quarantine(self, batch_id: int, reason: str) -> None:
        """Move a batch aside (damaged, or rejected by the upstream as INVALID_ARGUMENT)."""
        with self._lock:
            batch = self._index.get(batch_id)
            if batch is None:
                return
            self._forget(batch)
        self._move_to_quarantine(batch.path, reason)

    def stats(self) -> SpoolStats:
        with self._lock:
            batches = list(self._index.values())
            total = self._bytes
        oldest = min((b.created_ns for b in batches), default=time.time_ns())
        return SpoolStats(len(batches), total, sum(b.points for b in batches), (time.time_ns() - oldest) / 1e9)

    # -- for the downsampler (downsample.py), which runs inside _make_room with the lock held ----

    def read_locked(self, batch: SpooledBatch) -> bytes | None:
        try:
            _, payload = spoolfile.read(batch.path, self.largest_batch)
        except (Damaged, OSError):
            return None
        return payload

    def write_locked(self, signal: str, payload: bytes, points: int, created_ns: int) -> int:
        """Write a batch durably under a fresh id (fsync + rename) before the caller deletes anything."""
        seq = self._next_seq
        self._next_seq += 1
        batch = self._write_file(seq, signal, created_ns, points, payload)
        self._index[seq] = batch
        self._bytes += batch.size
        return seq

    def _write_file(self, seq: int, signal: str, created_ns: int, points: int, payload: bytes) -> SpooledBatch:
        """Frame, write and fsync a batch under a temp name, then rename it into place (counted)."""
        data = frame(seq, signal, created_ns, points, payload)
        final = self.directory / f"{seq:016x}{SUFFIX}"
        temp = self.directory / f".{seq:016x}.tmp"
        try:
            spoolfile.write_synced(temp, data)
            os.rename(temp, final)
            if self.sync == "file+dir":
                spoolfile.fsync_dir(self.directory)
        except OSError as exc:
            self._unlink(temp)
            raise SpoolFault(f"cannot write spool batch {final}: {exc}") from exc
        self._written.inc()
        self._written_bytes.inc(n=len(data))
        return SpooledBatch(seq, signal, points, created_ns, len(data), final)

    def remove_locked(self, batch: SpooledBatch) -> None:
        self._remove(batch)

    # -- internals ----------------------------------------------------------------------------

    def _count_drop(self, reason: str, batches: int, points: int, quiet: bool = False) -> None:
        self._dropped_batches.inc(reason, batches)
        self._dropped_points.inc(reason, points)
        if not quiet:  # callers that drop many at once log one summary themselves
            log.warning("spool: dropped %d batch(es), %d points (%s)", batches, points, reason)

    def _remove(self, batch: SpooledBatch) -> None:
        self._forget(batch)
        self._unlink(batch.path)

    def _forget(self, batch: SpooledBatch) -> None:
        if self._index.pop(batch.id, None) is not None:
            self._bytes -= batch.size

    def _unlink(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("spool: cannot remove %s: %s", path, exc)

    def _move_to_quarantine(self, path: Path, reason: str) -> None:
        self._quarantine.move(path, reason, self._size_of(path))
