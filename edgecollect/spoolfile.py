"""One spool batch file: its on-disk format, and reading it safely from a folder anyone may have touched.

On-disk format: one file per batch, `<seq as 16 hex digits>.ecb`:

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

A file is a batch only if it is a regular file (never a FIFO, device, folder or followed link: it is
opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat after the open), its header checks out, its
size is exactly what the header says, no larger than the largest batch the spool can write, and its
CRC matches. Header and size are checked before any payload byte is read, and the CRC is streamed, so
verifying costs `CHUNK` bytes of memory whatever the file's size; reading a payload costs at most the
largest batch.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from edgecollect.format import SIGNALS

MAGIC = b"ECSP"
VERSION = 1
HEADER = struct.Struct("<4sBBHQqII")
TRAILER = struct.Struct("<I")
OVERHEAD = HEADER.size + TRAILER.size
SUFFIX = ".ecb"
LARGEST_FORMAT = OVERHEAD + 0xFFFF_FFFF  # the length field is 32 bits
MAX_SEQ = 2**62  # ids above this are hostile names: numbering must not overflow the 64-bit field
CHUNK = 1024 * 1024  # streamed CRC: the memory a verification costs
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int  # the sequence number
    signal: str  # one of format.SIGNALS
    points: int
    created_ns: int
    size: int  # bytes on disk, framing included
    path: Path


class Damaged(Exception):
    """A spool file that fails verification; the message is the quarantine reason."""


class NotRegular(Damaged):
    """A FIFO, device, folder or link where a batch should be: never opened for reading, never followed."""

    def __init__(self) -> None:
        super().__init__("not_regular")


def largest_batch(max_size: int) -> int:
    """The largest file a spool capped at `max_size` can write (it refuses bigger batches)."""
    return min(max_size, LARGEST_FORMAT)


def frame(seq: int, signal: str, created_ns: int, points: int, payload: bytes) -> bytes:
    header = HEADER.pack(MAGIC, VERSION, SIGNALS.index(signal), 0, seq, created_ns, points, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(header))
    return header + payload + TRAILER.pack(crc)


def _check_header(header: bytes, size: int, largest: int) -> SpooledBatch:
    """The checks that need no payload byte: magic, version, signal, exact size, size bound."""
    if size < OVERHEAD or len(header) < HEADER.size:
        raise Damaged("truncated")
    magic, version, signal, _, seq, created_ns, points, length = HEADER.unpack_from(header)
    if magic != MAGIC:
        raise Damaged("bad_magic")
    if version != VERSION:
        raise Damaged("bad_version")
    if size != OVERHEAD + length:
        raise Damaged("truncated" if size < OVERHEAD + length else "trailing_bytes")
    if size > largest:
        raise Damaged("too_large")
    if signal >= len(SIGNALS):
        raise Damaged("bad_signal")
    return SpooledBatch(seq, SIGNALS[signal], points, created_ns, size, Path())


def unframe(data: bytes) -> tuple[SpooledBatch, bytes]:
    """Verify one file's bytes; returns its description (path unset) and payload, or raises Damaged."""
    batch = _check_header(data[: HEADER.size], len(data), LARGEST_FORMAT)
    length = batch.size - OVERHEAD
    (crc,) = TRAILER.unpack_from(data, HEADER.size + length)
    if zlib.crc32(memoryview(data)[: HEADER.size + length]) != crc:
        raise Damaged("bad_checksum")
    return batch, data[HEADER.size : HEADER.size + length]


def open_regular(path: Path) -> int:
    """A read-only descriptor on `path` if it is a regular file; NotRegular otherwise, never blocking.

    O_NOFOLLOW refuses a link, O_NONBLOCK keeps a FIFO from blocking the open, and fstat after the open
    closes the race with a swap between listing and opening.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        # ELOOP for a link, ENXIO for a socket, EACCES for a device: only the entry itself is asked.
        try:
            regular = stat.S_ISREG(os.lstat(path).st_mode)
        except OSError:
            raise exc from None
        if not regular:
            raise NotRegular() from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegular()
    return fd


def _read_exact(fd: int, n: int, offset: int) -> bytes:
    parts = []
    while n > 0:
        part = os.pread(fd, min(n, CHUNK), offset)
        if not part:
            break
        parts.append(part)
        n -= len(part)
        offset += len(part)
    return b"".join(parts)


def verify(path: Path, largest: int) -> SpooledBatch:
    """Check a batch file without holding it: header and size first, then the CRC in CHUNK pieces."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        batch = _check_header(_read_exact(fd, HEADER.size, 0), size, largest)
        end = size - TRAILER.size
        crc, offset = 0, 0
        buf = bytearray(min(CHUNK, max(end, 1)))
        view = memoryview(buf)
        while offset < end:
            n = os.preadv(fd, [view[: min(len(buf), end - offset)]], offset)
            if n <= 0:
                raise Damaged("truncated")  # shrank under us
            crc = zlib.crc32(view[:n], crc)
            offset += n
        (stored,) = TRAILER.unpack(_read_exact(fd, TRAILER.size, end))
    except struct.error as exc:
        raise Damaged("truncated") from exc
    finally:
        os.close(fd)
    if crc != stored:
        raise Damaged("bad_checksum")
    return SpooledBatch(batch.id, batch.signal, batch.points, batch.created_ns, batch.size, path)


def read(path: Path, largest: int) -> tuple[SpooledBatch, bytes]:
    """A verified batch and its payload; memory at most `largest` (checked before reading)."""
    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        _check_header(_read_exact(fd, HEADER.size, 0), size, largest)
        data = _read_exact(fd, size, 0)
    finally:
        os.close(fd)
    batch, payload = unframe(data)
    return SpooledBatch(batch.id, batch.signal, batch.points, batch.created_ns, batch.size, path), payload


def seq_of(name: str) -> int | None:
    """The batch id a file name stands for, or None for a name the spool did not write."""
    if not name.endswith(SUFFIX) or len(name) != 16 + len(SUFFIX):
        return None
    try:
        seq = int(name[: -len(SUFFIX)], 16)
    except ValueError:
        return None
    return seq if 0 < seq < MAX_SEQ else None


def write_synced(path: Path, data: bytes) -> None:
    """Write a new file whole and fsync it (O_TRUNC: a leftover temp of a crashed rewrite is reused)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
