"""The durable queue of batch files on disk (design.md, "spool").

Owns durability, the byte cap, age eviction, quarantine and recovery. It never blocks start-up on a
damaged file and never exceeds its byte cap (a batch larger than the cap is refused and counted).

On-disk format: one file per batch, `<seq as 16 hex digits>.ecb`, in `<state_dir>/spool/`:

    offset  size  field
    0       4     magic b"ECSP"
    4       1     format version (1)
    5       1     signal: 0 metrics, 1 logs
    6       2     reserved (0)
    8       8     seq (uint64, little-endian; order of writing)
    16      8     created, Unix ns (int64)
    24      4     points (or log records) in the batch
    28      4     payload length N
    32      N     payload: one Arrow IPC stream (batch.py)
    32+N    4     CRC-32 (zlib) of bytes 0 .. 32+N

A write goes to `.<seq>.tmp`, is fsync'd and renamed to its final name; with `sync = "file+dir"`
the directory is fsync'd too. Only then is the batch acknowledged to its sources. A file is valid
only if its size, magic, version and CRC all check out, so a torn write can never be read as a
batch. Damaged files go to `quarantine/` (bounded) and are counted.

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
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgecollect.errors import SpoolFault
from edgecollect.telemetry import Telemetry

log = logging.getLogger(__name__)

MAGIC = b"ECSP"
VERSION = 1
HEADER = struct.Struct("<4sBBHQqII")
TRAILER = struct.Struct("<I")
OVERHEAD = HEADER.size + TRAILER.size
SIGNALS = ("metrics", "logs")
SUFFIX = ".ecb"
WhenFull = Literal["drop_oldest", "drop_newest"]
SyncMode = Literal["file", "file+dir"]


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int  # the sequence number
    signal: str  # "metrics" | "logs"
    points: int
    created_ns: int
    size: int  # bytes on disk, framing included
    path: Path


@dataclass(frozen=True, slots=True)
class SpoolStats:
    files: int
    bytes: int
    points: int
    oldest_age_s: float


class Damaged(Exception):
    """A spool file that fails verification; the message is the quarantine reason."""


def frame(seq: int, signal: str, created_ns: int, points: int, payload: bytes) -> bytes:
    header = HEADER.pack(MAGIC, VERSION, SIGNALS.index(signal), 0, seq, created_ns, points, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(header))
    return header + payload + TRAILER.pack(crc)


def unframe(data: bytes) -> tuple[SpooledBatch, bytes]:
    """Verify one file's bytes; returns its description (path unset) and payload, or raises Damaged."""
    if len(data) < OVERHEAD:
        raise Damaged("truncated")
    magic, version, signal, _, seq, created_ns, points, length = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise Damaged("bad_magic")
    if version != VERSION:
        raise Damaged("bad_version")
    if len(data) != OVERHEAD + length:
        raise Damaged("truncated" if len(data) < OVERHEAD + length else "trailing_bytes")
    (crc,) = TRAILER.unpack_from(data, HEADER.size + length)
    if zlib.crc32(data[: HEADER.size + length]) != crc:
        raise Damaged("bad_checksum")
    if signal >= len(SIGNALS):
        raise Damaged("bad_signal")
    payload = data[HEADER.size : HEADER.size + length]
    return SpooledBatch(seq, SIGNALS[signal], points, created_ns, len(data), Path()), payload


def _write_synced(path: Path, data: bytes) -> None:
    """Write a new file whole and fsync it (O_TRUNC: a leftover temp of a crashed rewrite is reused)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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

    # -- start-up -----------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folders, verify every file, quarantine the damaged ones. Never raises on data."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.quarantine_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise SpoolFault(f"cannot create spool directory {self.directory}: {exc}") from exc
        self._recover_temp_files()
        max_seq = 0
        for path in sorted(self.directory.iterdir()):
            if path.is_dir() or path.name.endswith(".tmp"):
                continue
            seq = _seq_of(path)
            if seq is not None:
                max_seq = max(max_seq, seq)
            try:
                if seq is None:
                    raise Damaged("bad_name")
                batch, _ = unframe(path.read_bytes())
                if batch.id != seq:
                    raise Damaged("name_mismatch")
            except Damaged as exc:
                self._move_to_quarantine(path, str(exc))
                continue
            except OSError as exc:
                self._move_to_quarantine(path, f"unreadable:{exc.errno}")
                continue
            self._index[seq] = SpooledBatch(seq, batch.signal, batch.points, batch.created_ns, batch.size, path)
            self._bytes += batch.size
        self._next_seq = max_seq + 1
        self.expire()
        self._enforce_cap()
        stats = self.stats()
        log.info("spool %s: %d batches, %d bytes, %d points", self.directory, stats.files, stats.bytes, stats.points)

    def _recover_temp_files(self) -> None:
        """Promote temp files that verify (fsync'd, rename lost); remove torn ones (never acked)."""
        for path in sorted(self.directory.glob(".*.tmp")):
            seq_text = path.name[1:].split(".", 1)[0]
            try:
                batch, _ = unframe(path.read_bytes())
                complete = f"{batch.id:016x}" == seq_text
            except (Damaged, OSError):
                complete = False
            if complete:
                final = self.directory / f"{seq_text}{SUFFIX}"
                try:
                    os.replace(path, final)  # a rewrite's temp replaces the batch it rewrote
                    self._promoted.inc()
                    continue
                except OSError as exc:
                    log.error("spool: cannot promote %s: %s", path.name, exc)
            self._unlink(path)
            self._temp_removed.inc()

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
        created_ns = time.time_ns()
        data = frame(seq, signal, created_ns, points, payload)
        final = self.directory / f"{seq:016x}{SUFFIX}"
        temp = self.directory / f".{seq:016x}.tmp"
        try:
            _write_synced(temp, data)
            os.rename(temp, final)
            if self.sync == "file+dir":
                _fsync_dir(self.directory)
        except OSError as exc:
            self._unlink(temp)
            raise SpoolFault(f"cannot write spool batch {final}: {exc}") from exc
        with self._lock:
            self._index[seq] = SpooledBatch(seq, signal, points, created_ns, len(data), final)
            self._bytes += len(data)
        self._written.inc()
        self._written_bytes.inc(n=len(data))
        return seq

    def _make_room(self, size: int) -> bool:
        """Evict per policy until `size` more bytes fit. Caller holds the lock."""
        while self._bytes + size > self.max_size:
            if self.when_full == "drop_newest" or not self._index:
                return False
            oldest = self._index[min(self._index)]
            self._remove(oldest)
            self._count_drop("drop_oldest", 1, oldest.points)
        return True

    def _enforce_cap(self) -> None:
        """A cap lowered between runs applies at once, by the full-spool policy, not at the next write."""
        with self._lock:
            while self._bytes > self.max_size and self._index:
                victim = self._index[(min if self.when_full == "drop_oldest" else max)(self._index)]
                self._remove(victim)
                self._count_drop(self.when_full, 1, victim.points)

    def expire(self) -> int:
        """Drop batches older than max_age; returns how many."""
        cutoff = time.time_ns() - int(self.max_age_s * 1e9)
        removed = 0
        with self._lock:
            for batch in sorted(self._index.values(), key=lambda b: b.id):
                if batch.created_ns >= cutoff:
                    break
                self._remove(batch)
                self._count_drop("max_age", 1, batch.points)
                removed += 1
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
            _, payload = unframe(batch.path.read_bytes())
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
            _write_synced(temp, data)
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
                _fsync_dir(self.directory)
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

    # -- internals ----------------------------------------------------------------------------

    def _count_drop(self, reason: str, batches: int, points: int) -> None:
        self._dropped_batches.inc(reason, batches)
        self._dropped_points.inc(reason, points)
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
        self._quarantined.inc(reason)
        target = self.quarantine_dir / f"{time.time_ns()}-{reason.replace('/', '_')}-{path.name}"
        log.warning("spool: quarantined %s (%s) as %s", path.name, reason, target.name)
        try:
            os.replace(path, target)
        except OSError as exc:
            log.error("spool: cannot quarantine %s (%s); removing it", path, exc)
            self._unlink(path)
            return
        self._trim_quarantine()

    def _trim_quarantine(self) -> None:
        """Keep quarantine within its own cap so damaged data cannot fill the card."""
        try:
            files = sorted(self.quarantine_dir.iterdir())
            sizes = [(p, p.stat().st_size) for p in files if p.is_file()]
        except OSError:
            return
        total = sum(s for _, s in sizes)
        for path, size in sizes:
            if total <= self.quarantine_max_size:
                break
            self._unlink(path)
            total -= size


def _seq_of(path: Path) -> int | None:
    if not path.name.endswith(SUFFIX):
        return None
    try:
        return int(path.name[: -len(SUFFIX)], 16)
    except ValueError:
        return None
