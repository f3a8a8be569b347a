"""Clock repair: moving timestamps taken on a wrong clock once it steps into sync (design.md invariant 7).

`timesync.py` detects the step and says how far pre-step times must move (`ClockStep`); these pure
functions apply it to drained ring columns (`repair_drained`, `repair_logs`) and to a spooled batch
(`repair_spool_batch`). Only rows flagged FLAG_CLOCK_UNSYNCED and not yet FLAG_TIME_REPAIRED, of
this boot, stamped before the step, move; they gain FLAG_TIME_REPAIRED. The boot id (the batch's
META_BOOT_ID) ties rows to one boot's clock: a batch from an earlier boot cannot be repaired (its
boot-time offset is lost) and is left as it is, flagged.

Must never: change a batch of another boot, move a row twice (repair is idempotent: an agent
killed mid-rewrite repairs the same file again), or import pyarrow.compute before a spooled batch
needs repair (an agent without an upstream never loads it: tests/core/test_lazy_imports.py).
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import MutableSequence
from typing import Protocol

import pyarrow as pa

from edgecollect.format import COL_FLAGS, COL_START_TIME, COL_TIME, FLAG_CLOCK_UNSYNCED, FLAG_TIME_REPAIRED
from edgecollect.format.reader import read_batch, to_ipc
from edgecollect.model import LogRecord
from edgecollect.timesync import ClockStep


def repair_columns(
    times_ns: MutableSequence[int],
    flags: MutableSequence[int],
    delta_ns: int,
    *,
    before_ns: int | None = None,
    until_ns: int | None = None,
    mark: bool = True,
) -> int:
    """Shift eligible rows of aligned columns in place; returns how many moved.

    Flagged rows in [before_ns, until_ns) are marked repaired without moving (see ClockStep).
    Other flag bits (e.g. the ring's FLAG_INT) are kept.
    """
    moved = 0
    for i, (t, f) in enumerate(zip(times_ns, flags, strict=True)):
        if not f & FLAG_CLOCK_UNSYNCED or f & FLAG_TIME_REPAIRED:
            continue
        if before_ns is None or t < before_ns:
            times_ns[i] = t + delta_ns
            moved += 1
        elif until_ns is None or t >= until_ns:
            continue
        if mark:
            flags[i] = f | FLAG_TIME_REPAIRED
    return moved


class DrainedLike(Protocol):
    """The two columns of `edgecollect.buffer.Drained` that repair touches."""

    @property
    def times_ns(self) -> array[int]: ...

    @property
    def flags(self) -> array[int]: ...


def repair_drained(drained: DrainedLike, step: ClockStep) -> int:
    """Apply a step to a `buffer.Drained` in place; returns how many samples moved.

    Rings are drained before each batch is cut, so the batcher applies every step reported since
    the previous drain to the next drain (whatever a ring held at the step is in that drain).
    """
    return repair_columns(
        drained.times_ns, drained.flags, step.delta_ns,
        before_ns=step.before_ns, until_ns=step.until_ns, mark=step.synced,
    )


def repair_logs(records: list[LogRecord], step: ClockStep) -> list[LogRecord]:
    """Apply a step to drained log records (they carry their clock flags like samples do)."""
    times = array("q", (r.time_ns for r in records))
    flags = array("B", (r.flags for r in records))
    repair_columns(times, flags, step.delta_ns, before_ns=step.before_ns, until_ns=step.until_ns, mark=step.synced)
    return [
        r if (r.time_ns, r.flags) == (t, f) else dataclasses.replace(r, time_ns=t, flags=f)
        for r, t, f in zip(records, times, flags, strict=True)
    ]


def repair_spool_batch(
    ipc_bytes: bytes,
    delta_ns: int,
    boot_id: str,
    *,
    before_ns: int | None = None,
    until_ns: int | None = None,
    mark: bool = True,
) -> bytes:
    """Rewrite one spooled Arrow IPC batch (metrics or logs) after a clock step.

    Rows flagged unsynced and not yet repaired, stamped before `before_ns`, move by `delta_ns` and
    (with `mark`) gain FLAG_TIME_REPAIRED; so does a cumulative row's start time, taken on the same
    wrong clock. Flagged rows in [before_ns, until_ns) are only marked (see ClockStep). A batch of
    another boot, or with nothing to change, comes back as the same bytes object, so the caller can
    skip rewriting the file (`result is ipc_bytes`).
    """
    import pyarrow.compute as pc  # on demand: see the module docstring

    spooled = read_batch(ipc_bytes)
    if not boot_id or spooled.boot_id != boot_id:
        return ipc_bytes
    batch = spooled.batch
    flags = spooled.flags
    times = spooled.column(COL_TIME).cast(pa.int64())
    pending = pc.and_(
        pc.not_equal(pc.bit_wise_and(flags, pa.scalar(FLAG_CLOCK_UNSYNCED, pa.uint8())), 0),
        pc.equal(pc.bit_wise_and(flags, pa.scalar(FLAG_TIME_REPAIRED, pa.uint8())), 0),
    )
    mask = pending  # rows that move
    confirm = pa.repeat(False, batch.num_rows)  # rows only marked
    if before_ns is not None:
        before = pc.less(times, pa.scalar(before_ns, pa.int64()))
        mask = pc.and_(pending, before)
        if until_ns is not None:
            confirm = pc.and_(
                pc.and_(pending, pc.invert(before)), pc.less(times, pa.scalar(until_ns, pa.int64()))
            )
    if not pc.any(mask).as_py() and not (mark and pc.any(confirm).as_py()):
        return ipc_bytes
    delta = pa.scalar(delta_ns, pa.int64())
    columns = {name: batch.column(name) for name in batch.schema.names}
    ts_type = batch.schema.field(COL_TIME).type
    columns[COL_TIME] = pc.if_else(mask, pc.add(times, delta), times).cast(ts_type)
    if mark:
        marked = pc.bit_wise_or(flags, pa.scalar(FLAG_TIME_REPAIRED, pa.uint8()))
        columns[COL_FLAGS] = pc.if_else(pc.or_(mask, confirm), marked, flags)
    if spooled.has(COL_START_TIME):
        starts = spooled.column(COL_START_TIME).cast(pa.int64())
        start_mask = mask if before_ns is None else pc.and_(
            mask, pc.less(starts, pa.scalar(before_ns, pa.int64()))
        )
        shifted = pc.if_else(start_mask, pc.add(starts, delta), starts)
        columns[COL_START_TIME] = shifted.cast(batch.schema.field(COL_START_TIME).type)
    out = pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)
    return to_ipc(out)


__all__ = ["DrainedLike", "repair_columns", "repair_drained", "repair_logs", "repair_spool_batch"]
