"""Offline views of a spool directory for `edgecollect spool ...`: list, show, export.

Read-only: damaged files are reported, never moved (only the running agent quarantines), so these
commands are safe to run beside a live agent, and they never take its state-dir lock. Files are read
as the agent reads them (spoolfile.py): a FIFO, device or link is reported as damaged without being
opened or followed, and a file larger than the largest batch the configured spool can write is
damaged before a byte of it is read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc

from edgecollect import spoolfile
from edgecollect.format.reader import BatchView, read_batch
from edgecollect.spoolfile import SUFFIX, Damaged, SpooledBatch

EXIT_OK, EXIT_FAILURE = 0, 1
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def scan(
    directory: Path, largest: int = spoolfile.LARGEST_FORMAT, payloads: bool = True,
) -> Iterator[tuple[Path, SpooledBatch | None, bytes | str]]:
    """(path, batch, payload) for valid files, (path, None, reason) for damaged ones; oldest first.

    `payloads=False` verifies without holding a payload (payload is then b""): memory stays at
    spoolfile.CHUNK whatever the files hold.
    """
    if not directory.is_dir():
        return
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries if e.name.endswith(SUFFIX))
    for name in names:
        path = directory / name
        try:
            if payloads:
                batch, payload = spoolfile.read(path, largest)
            else:
                batch, payload = spoolfile.verify(path, largest), b""
        except Damaged as exc:
            yield path, None, str(exc)
            continue
        except OSError as exc:
            yield path, None, f"unreadable: {exc.strerror}"
            continue
        yield path, batch, payload


def ls(directory: Path, out: TextIO, largest: int = spoolfile.LARGEST_FORMAT) -> int:
    print(f"{'ID':>8}  {'SIGNAL':<8}{'POINTS':>8}{'BYTES':>10}  CREATED (UTC)", file=out)
    total = 0
    for path, batch, payload in scan(directory, largest, payloads=False):
        if batch is None:
            print(f"{path.name:>8}  DAMAGED ({payload!s})", file=out)
            continue
        total += batch.size
        created = time.strftime(TIME_FORMAT, time.gmtime(batch.created_ns / 1e9))
        note = ""
        if batch.signal == "metrics":
            from edgecollect.downsample import describe, read_head

            note = f"  {describe(read_head(path))}".rstrip()
        print(f"{batch.id:>8}  {batch.signal:<8}{batch.points:>8}{batch.size:>10}  {created}{note}", file=out)
    print(f"total {total} bytes in {directory}", file=out)
    return EXIT_OK


def show(directory: Path, batch_id: str, out: TextIO, largest: int = spoolfile.LARGEST_FORMAT) -> int:
    for path, batch, payload in scan(directory, largest, payloads=False):
        if batch is None or (str(batch.id) != batch_id.lstrip("0") and path.stem != batch_id):
            continue
        try:
            _, payload = spoolfile.read(path, largest)
        except (Damaged, OSError) as exc:  # acked (or damaged) by the running agent meanwhile
            print(f"edgecollect: batch {batch_id} in {directory} is gone or damaged: {exc}", file=out)
            return EXIT_FAILURE
        spooled = read_batch(payload)
        table = pa.Table.from_batches([spooled.batch])
        print(f"batch {batch.id}: {batch.signal}, {batch.points} points, {batch.size} bytes, {path}", file=out)
        print(summary(spooled), file=out)
        print(table.schema.to_string(show_schema_metadata=True), file=out)
        print(denormalize(table).to_string(preview_cols=20), file=out)
        return EXIT_OK
    print(f"edgecollect: no batch {batch_id} in {directory}", file=out)
    return EXIT_FAILURE


def summary(spooled: BatchView) -> str:
    """'metrics/1, boot <id>, times 2026-11-29 10:00:00..2026-11-29 10:00:10 UTC' (what repair needs)."""
    span = spooled.time_range_ns()
    times = "no rows" if span is None else "times " + "..".join(
        time.strftime(TIME_FORMAT, time.gmtime(t // 1_000_000_000)) for t in span) + " UTC"
    return f"{spooled.format_name or 'unknown format'}, boot {spooled.boot_id or '?'}, {times}"


def denormalize(table: pa.Table) -> pa.Table:
    """Dictionary columns become plain strings, so batches with different dictionaries concatenate."""
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def export(
    directory: Path, fmt: str, out_path: Path, signal: str, out: TextIO, largest: int = spoolfile.LARGEST_FORMAT,
) -> int:
    tables = []
    damaged = 0
    for _, batch, payload in scan(directory, largest):
        if batch is None:
            damaged += 1
            continue
        if batch.signal != signal:
            continue
        assert isinstance(payload, bytes)
        table = denormalize(pa.Table.from_batches([read_batch(payload).batch]))
        tables.append(table.replace_schema_metadata(None))
    if not tables:
        print(f"edgecollect: no {signal} batches in {directory}", file=out)
        return EXIT_FAILURE
    merged = pa.concat_tables(tables)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(merged, out_path, compression="zstd")
    else:
        with pa.OSFile(str(out_path), "wb") as sink, pa.ipc.new_file(sink, merged.schema) as writer:
            writer.write_table(merged)
    note = f" ({damaged} damaged files skipped)" if damaged else ""
    print(f"wrote {merged.num_rows} {signal} rows from {len(tables)} batches to {out_path}{note}", file=out)
    return EXIT_OK
