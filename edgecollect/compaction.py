"""Spool compaction: while offline, small batch files are merged into larger ones (design.md, "spool").

Why: a 10-s host batch is ~60-100 points in a ~4 KB file, mostly schema and dictionaries; a day
offline was 8,640 files at ~71 B/point. Merged files of up to `max_points` points hold the same
points in far fewer bytes and files, and replay as few large wire batches.

Tiers bound the rewriting: a file's tier is given by its points (tier 0 below max_points/256, tier 1
below max_points/16, tier 2 below 3/4 of max_points, then full). When `fanout` (16) files of one tier
and signal wait, or the oldest tier-0 file is older than `max_wait_s`, the oldest run of them (same
resource and boot, at most max_points points and max_bytes bytes) is merged into one file. So no more
than ~16 small files wait at any moment and each point is rewritten about three times, not once per
merge.

The merged file takes the place of its oldest part, so the spool's order stays the order per series:
it is written whole to `.<first seq>.merge.tmp`, fsync'd, renamed over the first part's file, the
directory fsync'd, and only then are the other parts deleted (Spool.merged). A crash at any step
loses nothing: before the rename the parts are intact (a complete temp file is promoted over the
first part by the spool's recovery, the others then duplicate some of its points); after it, the
remaining parts only duplicate points of the merged file. Duplicates are allowed (at-least-once).

Must never: run while a batch of the spool may be in flight (the forwarder calls it only with none
in flight, from its own thread — the only thread that deletes on ack); exceed the spool's byte cap
(a merge that would not fit is skipped); merge different signals, resources or boots.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgecollect import spoolfile
from edgecollect.format import SIGNALS
from edgecollect.telemetry import Telemetry

if TYPE_CHECKING:
    import pyarrow as pa

    from edgecollect.spool import Spool
    from edgecollect.spoolfile import SpooledBatch

log = logging.getLogger(__name__)

MERGED_ZSTD_LEVEL = 19


@dataclass(frozen=True, slots=True)
class CompactionConfig:
    max_points: int = 100_000  # points in one merged file
    max_bytes: int = 4 * 1024**2  # bytes in one merged file
    fanout: int = 16  # files of one tier that trigger a merge
    max_wait_s: float = 900.0  # a small file older than this is merged with its neighbours anyway


def tier(points: int, max_points: int) -> int:
    """0, 1, 2 for files still worth merging (by size); 3: full, never merged again."""
    if points < max_points // 256:
        return 0
    if points < max_points // 16:
        return 1
    if points < max_points * 3 // 4:
        return 2
    return 3


class Compactor:
    def __init__(self, spool: Spool, telemetry: Telemetry, cfg: CompactionConfig | None = None) -> None:
        self._spool = spool
        self.cfg = cfg or CompactionConfig()
        self._merges = telemetry.counter("spool", "merges", "outcome")
        self._merged_files = telemetry.counter("spool", "files_merged")
        self._merge_bytes = telemetry.counter("spool", "merge_bytes", unit="By")

    def run(self, now_ns: int | None = None) -> int:
        """Merge what is due; returns how many merges were done. Never raises on data or I/O."""
        now_ns = now_ns if now_ns is not None else time.time_ns()
        done = 0
        for signal in SIGNALS:
            for _ in range(64):  # bounded work per call; the next append calls again
                run = self._due_run(self._spool.list(signal), now_ns)
                if run is None or not self._merge(run):
                    break
                done += 1
        return done

    def _due_run(self, batches: list[SpooledBatch], now_ns: int) -> list[SpooledBatch] | None:
        """The oldest stretch of consecutive files of one due tier (never across another file: the
        merged file takes its first part's place, so skipping one would reorder a series)."""
        tiers = [tier(b.points, self.cfg.max_points) for b in batches]
        for t in (0, 1, 2):
            count = tiers.count(t)
            oldest = next((b for b, bt in zip(batches, tiers, strict=True) if bt == t), None)
            aged = t == 0 and oldest is not None and now_ns - oldest.created_ns >= self.cfg.max_wait_s * 1e9
            if not (count >= self.cfg.fanout or (aged and count >= 2)):
                continue
            run: list[SpooledBatch] = []
            points = size = 0
            for b, bt in zip(batches, tiers, strict=True):
                full = run and (points + b.points > self.cfg.max_points or size + b.size > self.cfg.max_bytes)
                if bt != t or full:
                    if len(run) >= 2:
                        return run
                    run, points, size = [], 0, 0
                    if bt != t:
                        continue
                run.append(b)
                points += b.points
                size += b.size
            if len(run) >= 2:
                return run
        return None

    def _merge(self, run: list[SpooledBatch]) -> bool:
        from edgecollect.coalesce import coalesce, key_of
        from edgecollect.format.reader import from_ipc
        from edgecollect.spool import frame

        parts: list[tuple[SpooledBatch, pa.RecordBatch]] = []
        for b in run:
            payload = self._spool.read(b.id)
            if payload is None:
                break  # acked, evicted or quarantined meanwhile: merge what came before it
            try:
                batch = from_ipc(payload)
            except Exception:  # noqa: BLE001 - the forwarder quarantines it when it gets there
                break
            if parts and key_of(parts[0][1]) != key_of(batch):
                break
            parts.append((b, batch))
        if len(parts) < 2:
            self._merges.inc("skipped")
            return False
        first = parts[0][0]
        points = sum(b.points for b, _ in parts)
        data = frame(first.id, first.signal, first.created_ns, points,
                     _to_ipc_dense(coalesce([p for _, p in parts])))
        if self._spool.stats().bytes + len(data) > self._spool.max_size:
            self._merges.inc("no_room")  # the byte cap holds even while both copies exist
            return False
        temp = first.path.with_name(f".{first.id:016x}.merge.tmp")
        try:
            spoolfile.write_synced(temp, data)
            os.replace(temp, first.path)
            spoolfile.fsync_dir(first.path.parent)  # the merged file's name is durable before parts go
        except OSError as exc:
            log.error("spool compaction: cannot write %s: %s", temp, exc)
            self._merges.inc("error")
            with contextlib.suppress(OSError):
                temp.unlink()
            return False
        self._spool.merged(first.id, points, len(data), [b.id for b, _ in parts[1:]])
        self._merges.inc("ok")
        self._merged_files.inc(n=len(parts))
        self._merge_bytes.inc(n=len(data))
        return True


def _to_ipc_dense(batch: pa.RecordBatch) -> bytes:
    """Plain Arrow IPC like batch.to_ipc, with a higher zstd level: a merged file is written once
    and kept for hours, so the extra CPU of a merge buys bytes on the card. 24 h of host cuts
    (bench_offline.py): level 3 2.17 B/point, 9 2.07, 19 1.99, for 1.6, 1.7, 2.1 ms CPU per cut
    on average, merges included. Arrow compresses buffer by buffer (< 1 MB each at 100,000
    points), so zstd sizes its window to the buffer and memory stays small."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=MERGED_ZSTD_LEVEL))
    with pa.ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


