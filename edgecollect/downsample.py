"""Coarsening a full spool instead of dropping it (`[spool] when_full = "downsample"`).

When a write does not fit under the byte cap, the oldest raw metrics batches are rewritten into
per-series aggregates over `downsample_window` (aligned to wall-clock multiples of it): a gauge
becomes `<name>.min/.max/.mean/.last/.count` (named like the aggregate processor's series), each
row stamped with the window end and carrying the window start as its start time; a cumulative or
up-down sum keeps its own name and its last value per window; a delta sum its sum. Only when no
raw metrics batch is left to coarsen does the spool fall back to dropping the oldest.

Format: a downsampled batch is an ordinary `metrics/1` batch (same columns, so `spool export`
concatenates raw and downsampled batches alike) whose schema metadata adds META_DOWNSAMPLED
(the window in seconds) and META_DOWNSAMPLED_RANGE ("<first window start ns>-<last window end ns>"),
edgecollect/format/__init__.py; `spool ls` shows both.

Durability and acks: the aggregate is written under a fresh sequence number, fsync'd and renamed
before any original is deleted. A crash in between leaves originals and aggregate both (duplicates,
never loss). Because the id is fresh, an upstream ack that arrives for an original meanwhile
deletes nothing but that original (whose data it had delivered). The previous downsampled batch,
when small, is merged into the new one so the per-batch schema cost (about 3 KB) is paid once per
many windows. Runs with the spool's lock held, inside the write that needed room.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from edgecollect import spoolfile
from edgecollect.format import (
    COL_ATTRIBUTES,
    COL_DOUBLE,
    COL_FLAGS,
    COL_INT,
    COL_KIND,
    COL_NAME,
    COL_START_TIME,
    COL_TIME,
    COL_UNIT,
    FLAG_CLOCK_UNSYNCED,
    FLAG_TIME_REPAIRED,
    META_DOWNSAMPLED,
    META_DOWNSAMPLED_RANGE,
    METRICS_FORMAT,
)
from edgecollect.format.reader import METRICS_FIELDS, TS, format_of, from_ipc, head_metadata, to_ipc
from edgecollect.spoolfile import SpooledBatch
from edgecollect.telemetry import Telemetry

log = logging.getLogger(__name__)

GAUGE_FUNCTIONS = ("min", "max", "mean", "last", "count")
HEAD_BYTES = 64 * 1024  # a batch's schema message (with the resource metadata) fits in this
MERGE_MAX_ROWS = 50_000  # a downsampled batch grows by merging up to this many rows
GROUP_MAX_BATCHES = 32  # raw batches coarsened in one rewrite, at most
GROUP_FRACTION = 16  # and at least 1/16 of the cap's worth, so rewrites are not one per write


def describe(payload: bytes) -> str:
    """'downsampled 5m, 2026-11-22 00:00..2026-11-22 06:00' for a downsampled batch, else ''."""
    try:
        meta = head_metadata(payload)
    except (pa.ArrowInvalid, OSError):
        return ""
    window = meta.get(META_DOWNSAMPLED)
    if window is None:
        return ""
    import time

    seconds = float(window)
    label = f"{seconds / 60:g}m" if seconds % 60 == 0 else f"{seconds:g}s"
    lo, _, hi = meta.get(META_DOWNSAMPLED_RANGE, b"0-0").decode().partition("-")
    fmt = "%Y-%m-%d %H:%M"
    span = f"{time.strftime(fmt, time.gmtime(int(lo) / 1e9))}..{time.strftime(fmt, time.gmtime(int(hi) / 1e9))}"
    return f"downsampled {label}, {span}"


def coarsen(table: pa.Table, window_ns: int) -> pa.Table:
    """Raw metrics rows (dictionary columns decoded to strings) to per-window aggregates."""
    doubles = table[COL_DOUBLE]
    value = pc.if_else(pc.is_null(doubles), pc.cast(table[COL_INT], pa.float64()), doubles)
    time_ns = pc.cast(table[COL_TIME], pa.int64())
    window = pc.multiply(pc.divide(time_ns, window_ns), window_ns)  # integer division: aligned starts
    work = pa.table({
        "name": table[COL_NAME], "unit": table[COL_UNIT], "kind": table[COL_KIND], "attributes": table[COL_ATTRIBUTES],
        "start": pc.cast(table[COL_START_TIME], pa.int64()), "time": time_ns, "window": window,
        "value": value, "unsynced": pc.bit_wise_and(pc.cast(table[COL_FLAGS], pa.int64()), FLAG_CLOCK_UNSYNCED),
        "repaired": pc.bit_wise_and(pc.cast(table[COL_FLAGS], pa.int64()), FLAG_TIME_REPAIRED),
    }).sort_by([("time", "ascending")])
    keys = ["name", "unit", "kind", "attributes", "window"]
    grouped = work.group_by(keys, use_threads=False).aggregate([
        ("value", "min"), ("value", "max"), ("value", "mean"), ("value", "last"), ("value", "count"),
        ("value", "sum"), ("start", "last"), ("unsynced", "max"), ("repaired", "max"),
    ])
    columns: dict[str, list[object]] = {f.name: [] for f in METRICS_FIELDS}
    for row in grouped.to_pylist():
        start, end = row["window"], row["window"] + window_ns
        flags = (row["unsynced_max"] or 0) | (row["repaired_max"] or 0)
        if row["kind"] == "gauge":
            outputs = [(f"{row['name']}.{f}", row[f"value_{f}"], f) for f in GAUGE_FUNCTIONS]
            row_start: int | None = start
        elif row["kind"] == "delta":
            outputs, row_start = [(row["name"], row["value_sum"], "sum")], start
        else:  # cumulative and up-down sums keep their last value and their own start
            outputs, row_start = [(row["name"], row["value_last"], "last")], row["start_last"]
        for name, val, function in outputs:
            columns[COL_NAME].append(name)
            columns[COL_UNIT].append("1" if function == "count" else row["unit"])
            columns[COL_KIND].append(row["kind"])
            columns[COL_ATTRIBUTES].append(row["attributes"])
            columns[COL_START_TIME].append(row_start)
            columns[COL_TIME].append(end)
            columns[COL_DOUBLE].append(None if function == "count" else float(val))
            columns[COL_INT].append(int(val) if function == "count" else None)
            columns[COL_FLAGS].append(flags)
    return pa.table({
        COL_NAME: pa.array(columns[COL_NAME], pa.string()), COL_UNIT: pa.array(columns[COL_UNIT], pa.string()),
        COL_KIND: pa.array(columns[COL_KIND], pa.string()),
        COL_ATTRIBUTES: pa.array(columns[COL_ATTRIBUTES], pa.string()),
        COL_START_TIME: pa.array(columns[COL_START_TIME], pa.int64()).cast(TS),
        COL_TIME: pa.array(columns[COL_TIME], pa.int64()).cast(TS),
        COL_DOUBLE: pa.array(columns[COL_DOUBLE], pa.float64()),
        COL_INT: pa.array(columns[COL_INT], pa.int64()),
        COL_FLAGS: pa.array(columns[COL_FLAGS], pa.uint8()),
    })


def _decoded(payload: bytes) -> tuple[pa.Table, dict[bytes, bytes]]:
    batch = from_ipc(payload)
    meta = dict(batch.schema.metadata or {})
    columns = [pc.cast(c, c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in batch.columns]
    return pa.table(columns, names=batch.schema.names), meta


def encode(table: pa.Table, meta: dict[bytes, bytes]) -> pa.RecordBatch:
    """Plain string columns back to the metrics/1 schema (dictionary columns, rows by series)."""
    table = table.sort_by([(COL_NAME, "ascending"), (COL_ATTRIBUTES, "ascending"), (COL_TIME, "ascending")])
    columns = []
    for f in METRICS_FIELDS:
        col = table[f.name].combine_chunks()
        if pa.types.is_dictionary(f.type):
            encoded = pc.dictionary_encode(col)
            col = pa.DictionaryArray.from_arrays(pc.cast(encoded.indices, f.type.index_type), encoded.dictionary)
        columns.append(col)
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(METRICS_FIELDS, metadata=meta))


class LockedSpool(Protocol):
    """What the downsampler uses of the Spool, whose lock its caller holds (spool.py's
    `_make_room`): typed here so that this module does not import spool.py, which imports it."""

    max_size: int
    _bytes: int
    _index: dict[int, SpooledBatch]

    def read_locked(self, batch: SpooledBatch) -> bytes | None: ...

    def write_locked(self, signal: str, payload: bytes, points: int, created_ns: int) -> int: ...

    def remove_locked(self, batch: SpooledBatch) -> None: ...


@dataclass
class Downsampler:
    spool: LockedSpool
    window_s: float
    telemetry: Telemetry

    def __post_init__(self) -> None:
        self._window_ns = int(self.window_s * 1e9)
        self._downsampled: dict[int, bool] = {}  # batch id -> is a downsampled batch
        self._unusable: set[int] = set()  # batch ids that failed to decode: never coarsened
        self._batches = self.telemetry.counter("spool", "downsampled_batches")
        self._points_in = self.telemetry.counter("spool", "downsampled_points", "direction")
        self._bytes_saved = self.telemetry.counter("spool", "downsample_saved", unit="By")
        self._failures = self.telemetry.counter("spool", "downsample_failures")

    def is_downsampled(self, batch: SpooledBatch) -> bool:
        """From the batch's schema metadata, read once (only the file's head) and remembered."""
        found = self._downsampled.get(batch.id)
        if found is None:
            found = batch.signal == "metrics" and _peek_downsampled(batch.path)
            self._downsampled[batch.id] = found
        return found

    def make_room(self, size: int) -> None:
        """Coarsen the oldest raw batches until `size` more bytes fit (spool lock held)."""
        spool = self.spool
        while (needed := spool._bytes + size - spool.max_size) > 0:
            try:
                if not self._coarsen_oldest(max(needed, spool.max_size // GROUP_FRACTION)):
                    return
            except (pa.ArrowException, ValueError, KeyError) as exc:
                # A batch we cannot coarsen must not fail the write: the spool drops instead.
                self._failures.inc()
                log.error("spool: downsampling failed (%s); dropping the oldest instead", exc)
                return

    def _coarsen_oldest(self, target_bytes: int) -> bool:
        """Coarsen the oldest raw batches worth about `target_bytes`: no more, so recent data stays raw."""
        spool = self.spool
        group: list[SpooledBatch] = []
        for batch in sorted(spool._index.values(), key=lambda b: b.id):
            if batch.signal != "metrics" or batch.id in self._unusable or self.is_downsampled(batch):
                continue
            group.append(batch)
            target_bytes -= batch.size
            if target_bytes <= 0 or len(group) >= GROUP_MAX_BATCHES:
                break
        if not group:
            return False
        # Aggregates get fresh ids, so the latest downsampled batch holds the data just before
        # the group's (the oldest raw data is always coarsened first).
        known = [i for i, d in self._downsampled.items() if d and i in spool._index]
        previous = [spool._index[max(known)]] if known else []
        tables: list[pa.Table] = []
        meta: dict[bytes, bytes] = {}
        inputs: list[SpooledBatch] = []
        for batch in group:
            payload = spool.read_locked(batch)
            try:
                if payload is None:
                    raise ValueError("unreadable")
                table, batch_meta = _decoded(payload)
                if format_of(batch_meta) != METRICS_FORMAT:
                    raise ValueError(f"format {format_of(batch_meta)!r}")
            except (pa.ArrowException, ValueError) as exc:
                # Left as it is: dropped in its turn when nothing raw is left to coarsen.
                self._unusable.add(batch.id)
                self._failures.inc()
                log.error("spool: batch %d cannot be downsampled (%s); it stays until dropped", batch.id, exc)
                continue
            meta = meta or batch_meta
            tables.append(table)
            inputs.append(batch)
        if not tables:
            return True  # the group was unusable; the next call looks further
        coarse = coarsen(pa.concat_tables(tables), self._window_ns)
        merged_from: list[SpooledBatch] = []
        if previous and previous[-1].points + coarse.num_rows <= MERGE_MAX_ROWS:
            payload = spool.read_locked(previous[-1])
            if payload is not None:
                earlier, _ = _decoded(payload)
                coarse = pa.concat_tables([earlier, coarse])
                merged_from.append(previous[-1])
        times = pc.cast(coarse[COL_TIME], pa.int64())
        meta = {**meta, META_DOWNSAMPLED: f"{self.window_s:g}".encode(),
                META_DOWNSAMPLED_RANGE: f"{pc.min(times).as_py() - self._window_ns}-{pc.max(times).as_py()}".encode()}
        payload = to_ipc(encode(coarse, meta))
        replaced = inputs + merged_from
        freed = sum(b.size for b in replaced)
        if len(payload) + spoolfile.OVERHEAD >= freed:
            return False  # nothing to gain: let the spool drop instead
        created = min(b.created_ns for b in replaced)
        new_id = spool.write_locked("metrics", payload, coarse.num_rows, created)
        self._downsampled[new_id] = True
        for batch in replaced:
            spool.remove_locked(batch)
            self._downsampled.pop(batch.id, None)
        self._unusable &= set(spool._index)
        self._batches.inc()
        self._points_in.inc("in", sum(b.points for b in inputs))
        self._points_in.inc("out", coarse.num_rows)
        self._bytes_saved.inc(n=freed - len(payload) - spoolfile.OVERHEAD)
        log.warning(
            "spool full: downsampled %d batches (%d points) into batch %d (%d points, %s windows)",
            len(inputs), sum(b.points for b in inputs), new_id, coarse.num_rows, f"{self.window_s:g}s",
        )
        return True


def read_head(path: Path) -> bytes:
    """The start of a spool file's payload: enough for its schema and metadata, never the whole file.

    Opened the spool's safe way (no link followed, no FIFO waited on); b"" if it cannot be read.
    """
    try:
        fd = spoolfile.open_regular(path)
    except (OSError, spoolfile.Damaged):
        return b""
    try:
        head = os.pread(fd, HEAD_BYTES, 0)
    except OSError:
        return b""
    finally:
        os.close(fd)
    return head[spoolfile.HEADER.size:]


def _peek_downsampled(path: Path) -> bool:
    """Whether a spool file's batch is downsampled, from the schema at the head of its payload."""
    try:
        return META_DOWNSAMPLED in head_metadata(read_head(path))
    except (OSError, pa.ArrowInvalid):
        return False

