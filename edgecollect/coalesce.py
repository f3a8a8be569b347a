"""Coalescing: several batches of one signal become one, for fewer, larger wire batches and spool files.

A wire batch of 60 host points is mostly schema and dictionaries (tests/bench/bench_wire.py: 17.4
B/point for 10-s host batches, 5.9 for 60-s ones), and so is a spool file. Batches are merged only
when they share their schema metadata (format, resource, boot id), so what a merged batch says about
its points is what each part said.

Order: a metrics batch keeps rows grouped by series, in time order within a series (batch.py); the
merged batch is sorted by series with a *stable* sort, so each series' rows stay in the order of the
parts, which are given oldest first. Logs are concatenated in order.

Must never: merge batches of different signals, resources or boots; lose or reorder a series' rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from edgecollect.format import METRICS_FORMAT, SERIES_COLUMNS
from edgecollect.format.reader import view


def key_of(batch: pa.RecordBatch) -> tuple[bytes, ...]:
    """Batches with equal keys may be merged: same format, resource and boot id."""
    return view(batch).merge_key


def coalesce(batches: Sequence[pa.RecordBatch]) -> pa.RecordBatch:
    """One batch holding every row of `batches` (oldest first, all with the same key_of)."""
    if len(batches) == 1:
        return batches[0]
    if len({key_of(b) for b in batches}) != 1:
        raise ValueError("only batches of one format, resource and boot can be coalesced")
    schema = batches[0].schema
    table = pa.Table.from_batches(batches, schema=schema).unify_dictionaries().combine_chunks()
    if view(batches[0]).format_name == METRICS_FORMAT:
        keys = pa.table({k: table.column(k).cast(pa.string()) for k in SERIES_COLUMNS})
        # Arrow's sort is stable: rows of one series keep the parts' (time) order.
        order = pa.compute.sort_indices(keys, sort_keys=[(k, "ascending") for k in SERIES_COLUMNS])
        table = table.take(order)
    merged = table.combine_chunks().to_batches()
    if len(merged) != 1:
        raise ValueError(f"coalescing produced {len(merged)} batches")
    return merged[0].replace_schema_metadata(schema.metadata)


def groups(batches: Sequence[pa.RecordBatch], max_points: int) -> list[list[int]]:
    """Indices of consecutive batches to merge: same key_of, at most `max_points` rows a group
    (a batch bigger than that stays alone)."""
    out: list[list[int]] = []
    rows = 0
    for i, batch in enumerate(batches):
        if out and key_of(batches[out[-1][0]]) == key_of(batch) and rows + batch.num_rows <= max_points:
            out[-1].append(i)
            rows += batch.num_rows
        else:
            out.append([i])
            rows = batch.num_rows
    return out
