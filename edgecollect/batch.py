"""Cutting batches: drain rings, build one Arrow record batch per signal, write zstd IPC bytes.

Spool format of a batch (design.md, "The spooled batch is plain Arrow"): one self-contained Arrow
IPC stream — schema, dictionaries, one record batch, end marker — with zstd buffer compression.
Anyone with pyarrow can read it with `pyarrow.ipc.open_stream`. The contract (format names,
metadata keys, flag bits, columns) is `edgecollect.format`'s; its schemas and IPC bytes are
`edgecollect.format.reader`'s. This module builds batches from drained rings.

Metrics rows are grouped by series and in time order within a series; the four dictionaries are
the batch's series table: each distinct name, unit, kind and attribute set is stored once, rows
carry only small indices. Log records keep their order.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa

from edgecollect.buffer import FLAG_INT, Drained
from edgecollect.format import BODY_BOOL, BODY_BYTES, BODY_DOUBLE, BODY_INT, BODY_STR, LOGS_FORMAT, METRICS_FORMAT
from edgecollect.format.reader import (
    IPC_OPTIONS,
    IPC_READ_OPTIONS,
    LOGS_FIELDS,
    METRICS_FIELDS,
    TS,
    batch_metadata,
    format_of,
    from_ipc,
    to_ipc,
)
from edgecollect.model import Attributes, LogRecord, Resource, SeriesRegistry

# Names of the contract that callers have always imported from here.
__all__ = [
    "IPC_OPTIONS", "IPC_READ_OPTIONS", "LOGS_FIELDS", "LOGS_FORMAT", "METRICS_FIELDS", "METRICS_FORMAT", "TS",
    "Rows", "attributes_json", "batch_format", "build_logs", "build_metrics", "chunks", "from_ipc", "merge",
    "to_ipc",
]


def attributes_json(attributes: Attributes) -> str:
    """Canonical JSON for an attribute set; JSON keeps str, int, float and bool apart."""
    return json.dumps(dict(attributes), separators=(",", ":"), sort_keys=True, allow_nan=False)


def _metadata(fmt: str, resource: Resource, boot_id: str) -> dict[bytes, bytes]:
    return batch_metadata(fmt, attributes_json(resource.attributes), boot_id)


_ATTR_JSON_MAX = 4096  # attribute sets whose JSON is remembered between batches (bounded memory)
_attr_json: dict[int, tuple[Attributes, str]] = {}


def _attributes_json_of(attributes: Attributes) -> str:
    """attributes_json() remembered per attribute tuple: a series keeps its tuple for life, so each
    batch re-serialises only the sets it has not seen. Keyed by identity and checked with `is`, so
    equal-but-distinct values (1, True, 1.0; 0.0, -0.0) never share a text."""
    hit = _attr_json.get(id(attributes))
    if hit is not None and hit[0] is attributes:
        return hit[1]
    text = attributes_json(attributes)
    if len(_attr_json) >= _ATTR_JSON_MAX:
        _attr_json.clear()
    _attr_json[id(attributes)] = (attributes, text)
    return text


def _dictionary(indices: list[int], values: list[str], index_type: pa.DataType) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(indices, index_type), pa.array(values, pa.string()))


@dataclass(frozen=True, slots=True)
class Rows:
    """Samples gathered from one or more drains, in append order."""

    series_ids: Sequence[int]
    times_ns: Sequence[int]
    floats: Sequence[float]
    ints: Sequence[int]
    flags: Sequence[int]


def build_metrics(rows: Rows, registry: SeriesRegistry, resource: Resource, boot_id: str) -> pa.RecordBatch:
    sids = rows.series_ids
    n = len(sids)
    # Stable sort by series keeps each series in time order and puts equal dictionary indices in
    # runs, which is what lets zstd shrink the index columns to almost nothing.
    order = sorted(range(n), key=sids.__getitem__)
    counts = Counter(sids)
    distinct = sorted(counts)
    series = registry.lookup_many(distinct)
    names: dict[str, int] = {}
    units: dict[str, int] = {}
    kinds: dict[str, int] = {}
    attr_sets: dict[str, int] = {}
    name_idx: list[int] = []
    unit_idx: list[int] = []
    kind_idx: list[int] = []
    attr_idx: list[int] = []
    starts: list[int | None] = []
    times_in = rows.times_ns
    lo = 0
    # Per series, not per row: rows of one series are one run of `order`, so the series' codes and
    # start time are repeated over the run (the batcher's per-point cost is these columns).
    for sid, s in zip(distinct, series, strict=True):
        count = counts[sid]
        name_idx += [names.setdefault(s.name, len(names))] * count
        unit_idx += [units.setdefault(s.unit, len(units))] * count
        kind_idx += [kinds.setdefault(s.kind, len(kinds))] * count
        attr_idx += [attr_sets.setdefault(_attributes_json_of(s.attributes), len(attr_sets))] * count
        start = registry.start_time_ns(sid)
        if start < 0:  # relative: an aggregate's window start, this long before the point's time
            starts += [(start + times_in[i]) or None for i in order[lo:lo + count]]
        else:
            starts += [start or None] * count
        lo += count
    times = [times_in[i] for i in order]
    flags = [rows.flags[i] for i in order]
    if any(f & FLAG_INT for f in flags):
        doubles_out: list[float | None] = []
        ints_out: list[int | None] = []
        for i in order:
            if rows.flags[i] & FLAG_INT:
                doubles_out.append(None)
                ints_out.append(rows.ints[i])
            else:
                doubles_out.append(rows.floats[i])
                ints_out.append(None)
        flags = [f & ~FLAG_INT for f in flags]  # the clock bits; FLAG_INT is the ring's own
    else:  # float readings only (the usual batch): no per-row branching
        doubles_out = [rows.floats[i] for i in order]
        ints_out = [None] * n
    columns = [
        _dictionary(name_idx, list(names), pa.int32()),
        _dictionary(unit_idx, list(units), pa.int32()),
        _dictionary(kind_idx, list(kinds), pa.int8()),
        _dictionary(attr_idx, list(attr_sets), pa.int32()),
        pa.array(starts, TS),
        pa.array(times, TS),
        pa.array(doubles_out, pa.float64()),
        pa.array(ints_out, pa.int64()),
        pa.array(flags, pa.uint8()),
    ]
    schema = pa.schema(METRICS_FIELDS, metadata=_metadata(METRICS_FORMAT, resource, boot_id))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


_BODY_TYPES = {str: BODY_STR, int: BODY_INT, float: BODY_DOUBLE, bool: BODY_BOOL, bytes: BODY_BYTES}


def build_logs(
    records: Sequence[LogRecord], resource: Resource, boot_id: str, flags: int = 0
) -> pa.RecordBatch:
    severities: dict[str, int] = {}
    attr_sets: dict[str, int] = {}
    sev_idx, attr_idx, body_type = [], [], []
    body_str: list[str | None] = []
    body_int: list[int | None] = []
    body_double: list[float | None] = []
    body_bool: list[bool | None] = []
    body_bytes: list[bytes | None] = []
    for r in records:
        sev_idx.append(severities.setdefault(r.severity_text, len(severities)))
        attr_idx.append(attr_sets.setdefault(attributes_json(r.attributes), len(attr_sets)))
        code = _BODY_TYPES[type(r.body)]
        body_type.append(code)
        body_str.append(r.body if isinstance(r.body, str) else None)
        body_int.append(r.body if code == BODY_INT and isinstance(r.body, int) else None)
        body_double.append(r.body if isinstance(r.body, float) else None)
        body_bool.append(r.body if isinstance(r.body, bool) else None)
        body_bytes.append(r.body if isinstance(r.body, bytes) else None)
    columns = [
        pa.array([r.time_ns for r in records], TS),
        pa.array([r.severity_number for r in records], pa.int32()),
        _dictionary(sev_idx, list(severities), pa.int8()),
        pa.array(body_type, pa.uint8()),
        pa.array(body_str, pa.string()),
        pa.array(body_int, pa.int64()),
        pa.array(body_double, pa.float64()),
        pa.array(body_bool, pa.bool_()),
        pa.array(body_bytes, pa.binary()),
        _dictionary(attr_idx, list(attr_sets), pa.int32()),
        pa.array([r.flags | flags for r in records], pa.uint8()),
    ]
    schema = pa.schema(LOGS_FIELDS, metadata=_metadata(LOGS_FORMAT, resource, boot_id))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def batch_format(batch: pa.RecordBatch) -> str:
    return format_of(batch.schema.metadata)


def merge(drains: Iterable[Drained]) -> Rows:
    """Concatenate the sample columns of several drains (order kept)."""
    from array import array

    sid, times, floats, ints, flags = array("I"), array("q"), array("d"), array("q"), array("B")
    for d in drains:
        sid.extend(d.series_ids)
        times.extend(d.times_ns)
        floats.extend(d.floats)
        ints.extend(d.ints)
        flags.extend(d.flags)
    return Rows(sid, times, floats, ints, flags)


def chunks(rows: Rows, max_points: int) -> list[Rows]:
    n = len(rows.series_ids)
    if n <= max_points:
        return [rows]
    out = []
    for lo in range(0, n, max_points):
        hi = lo + max_points
        out.append(
            Rows(
                rows.series_ids[lo:hi], rows.times_ns[lo:hi], rows.floats[lo:hi], rows.ints[lo:hi],
                rows.flags[lo:hi],
            )
        )
    return out
