"""Offline views of a spool directory for `edgecollect spool ...`: list, show, export.

Read-only: damaged files are reported, never moved (only the running agent quarantines), so these
commands are safe to run beside a live agent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pyarrow as pa
import pyarrow.compute as pc

from edgecollect.batch import from_ipc
from edgecollect.spool import SUFFIX, Damaged, unframe
from edgecollect.spoolindex import SpooledBatch

EXIT_OK, EXIT_FAILURE = 0, 1


def scan(directory: Path) -> Iterator[tuple[Path, SpooledBatch | None, bytes | str]]:
    """(path, batch, payload) for valid files, (path, None, reason) for damaged ones; oldest first."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            batch, payload = unframe(path.read_bytes())
        except Damaged as exc:
            yield path, None, str(exc)
            continue
        except OSError as exc:
            yield path, None, f"unreadable: {exc.strerror}"
            continue
        yield path, batch, payload


def ls(directory: Path, out: TextIO) -> int:
    print(f"{'ID':>8}  {'SIGNAL':<8}{'POINTS':>8}{'BYTES':>10}  CREATED (UTC)", file=out)
    total = 0
    for path, batch, payload in scan(directory):
        if batch is None:
            print(f"{path.name:>8}  DAMAGED ({payload!s})", file=out)
            continue
        total += batch.size
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(batch.created_ns / 1e9))
        note = ""
        if batch.signal == "metrics" and isinstance(payload, bytes):
            from edgecollect.downsample import describe

            note = f"  {describe(payload)}".rstrip()
        print(f"{batch.id:>8}  {batch.signal:<8}{batch.points:>8}{batch.size:>10}  {created}{note}", file=out)
    print(f"total {total} bytes in {directory}", file=out)
    return EXIT_OK


def show(directory: Path, batch_id: str, out: TextIO) -> int:
    for path, batch, payload in scan(directory):
        if batch is None or (str(batch.id) != batch_id.lstrip("0") and path.stem != batch_id):
            continue
        assert isinstance(payload, bytes)
        table = pa.Table.from_batches([from_ipc(payload)])
        print(f"batch {batch.id}: {batch.signal}, {batch.points} points, {batch.size} bytes, {path}", file=out)
        print(table.schema.to_string(show_schema_metadata=True), file=out)
        print(denormalize(table).to_string(preview_cols=20), file=out)
        return EXIT_OK
    print(f"edgecollect: no batch {batch_id} in {directory}", file=out)
    return EXIT_FAILURE


def denormalize(table: pa.Table) -> pa.Table:
    """Dictionary columns become plain strings, so batches with different dictionaries concatenate."""
    columns = []
    for col in table.columns:
        if pa.types.is_dictionary(col.type):
            col = pc.cast(col, col.type.value_type)
        columns.append(col)
    return pa.Table.from_arrays(columns, names=table.column_names)


def export(directory: Path, fmt: str, out_path: Path, signal: str, out: TextIO) -> int:
    tables = []
    damaged = 0
    for _, batch, payload in scan(directory):
        if batch is None:
            damaged += 1
            continue
        if batch.signal != signal:
            continue
        assert isinstance(payload, bytes)
        table = denormalize(pa.Table.from_batches([from_ipc(payload)]))
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
