"""OTAP tables of one spooled batch: metrics/1 → UNIVARIATE_METRICS, RESOURCE_ATTRS, NUMBER_DATA_POINTS,
NUMBER_DP_ATTRS; logs/1 → LOGS, RESOURCE_ATTRS, LOG_ATTRS (otap-wire.md §4–§6).

Owns the mapping of our spool schema (edgecollect/batch.py) onto OTLP as the Go decoder rebuilds it:

* one resource per batch, its attributes from the batch's resource metadata; one scope,
  name `edgecollect`, version `edgecollect.__version__`, without attributes (so no SCOPE_ATTRS);
* a metric is a distinct (name, unit, kind); kinds map gauge → Gauge, cumulative → Sum(cumulative,
  monotonic), delta → Sum(delta, monotonic), updown → Sum(cumulative, non-monotonic); metric rows are
  sorted by (type, name, unit, temporality, monotonic) and points keep the spool's (series, time) order
  within their metric;
* the spool's clock flags become point (or log record) attributes so upstream sees the honesty marks
  (format.FLAG_ATTRIBUTES: bit 0 → `edgecollect.clock.unsynced = true`, bit 1 →
  `edgecollect.time.repaired = true`); the OTLP `flags` field is not used (its bit 0 means "no
  recorded value");
* every point gets an id (stored 0, 1, 1, …); log records get one only when they have attributes.

Must never: build a null `resource`/`scope` struct row, or more than 65 535 metrics or attributed log
records in one table (16-bit ids would wrap: pitfall 26) — those raise OtapEncodeError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from edgecollect import __version__
from edgecollect.exporters.otap_attrs import (
    TYPE_BOOL,
    AttrPlan,
    Entry,
    EntryTable,
    PlanCache,
    attribute_columns,
    entries_from_json,
    nonnull_delta,
    plan_of,
    row_delta,
)
from edgecollect.exporters.otap_ipc import Col, DictColumn, OtapEncodeError, as_type
from edgecollect.format import (
    COL_ATTRIBUTES,
    COL_BODY_BOOL,
    COL_BODY_BYTES,
    COL_BODY_DOUBLE,
    COL_BODY_INT,
    COL_BODY_STR,
    COL_BODY_TYPE,
    COL_DOUBLE,
    COL_FLAGS,
    COL_INT,
    COL_KIND,
    COL_NAME,
    COL_SEVERITY_NUMBER,
    COL_SEVERITY_TEXT,
    COL_START_TIME,
    COL_TIME,
    COL_UNIT,
    FLAG_ATTRIBUTES,
    FLAG_BITS,
)
from edgecollect.format.reader import view

TS = pa.timestamp("ns", tz="UTC")
SCOPE_NAME = "edgecollect"
MAX_IDS_16 = 65_535
# Spool kind → (metric_type, aggregation_temporality or None, is_monotonic or None), §5.2.
KINDS: dict[str, tuple[int, int | None, bool | None]] = {
    "gauge": (1, None, None),
    "cumulative": (2, 2, True),
    "delta": (2, 1, True),
    "updown": (2, 2, False),
}

# Payload type numbers (ArrowPayloadType, §1.3); kept here so table code needs no protobuf import.
RESOURCE_ATTRS, UNIVARIATE_METRICS, NUMBER_DATA_POINTS, NUMBER_DP_ATTRS = 1, 10, 11, 15
LOGS, LOG_ATTRS = 30, 31

Parse = Callable[[str], tuple[Entry, ...]]
Table = tuple[int, list[Col]]


@dataclass
class StreamDicts:
    """The cumulative dictionaries of one gRPC stream, one per dictionary column of each table."""

    name: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    unit: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    severity_text: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    scope_name: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    scope_version: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    res_key: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    res_str: DictColumn = field(default_factory=lambda: DictColumn("u16"))
    attr_key: DictColumn = field(default_factory=lambda: DictColumn("u8"))
    attr_str: DictColumn = field(default_factory=lambda: DictColumn("u16"))
    # Not wire state: derived from the data alone, so it survives reset().
    plans: PlanCache = field(default_factory=PlanCache)
    # The last resource table: (metadata text, res_key and res_str generations) → its tables.
    resource_tables: tuple[str, int, int, list[Table]] | None = None

    def reset(self) -> None:
        for d in (self.name, self.unit, self.severity_text, self.scope_name, self.scope_version,
                  self.res_key, self.res_str, self.attr_key, self.attr_str):
            d.reset()


def _dict_parts(batch: pa.RecordBatch, name: str) -> tuple[list[str], pa.Array]:
    """A string column as (dictionary values, int64 row indices), whatever its encoding in the batch."""
    col = _column(batch, name)
    if not pa.types.is_dictionary(col.type):
        col = col.dictionary_encode()
    if col.null_count:
        raise OtapEncodeError(f"column {name!r} has nulls")
    return col.dictionary.to_pylist(), as_type(col.indices, pa.int64())


def _column(batch: pa.RecordBatch, name: str, typ: pa.DataType | None = None) -> pa.Array:
    idx = batch.schema.get_field_index(name)
    if idx < 0:
        raise OtapEncodeError(f"spooled batch has no column {name!r}")
    col = batch.column(idx)
    return col if typ is None else as_type(col, typ)


def _timestamps(col: pa.Array) -> pa.Array:
    # The Go decoder takes the raw int64 as nanoseconds whatever the unit (pitfall 24): convert.
    if col.type == TS:
        return col
    if pa.types.is_timestamp(col.type):
        return col.cast(pa.timestamp("ns", tz=col.type.tz)).cast(TS)
    if pa.types.is_integer(col.type):
        return col.cast(pa.int64()).cast(TS)
    raise OtapEncodeError(f"not a timestamp column: {col.type}")


def _resource_scope(n: int, dicts: StreamDicts) -> list[Col]:
    # One resource and one scope per batch: decoded ids 0, stored row deltas all 0 (§4.1).
    zeros = pa.repeat(pa.scalar(0, pa.uint16()), n)
    first = pa.repeat(pa.scalar(0, pa.int64()), n)
    scope = pa.StructArray.from_arrays(
        [
            zeros,
            dicts.scope_name.encode([SCOPE_NAME], first),
            dicts.scope_version.encode([__version__], first),
        ],
        names=["id", "name", "version"],
    )
    return [Col("resource", pa.StructArray.from_arrays([zeros], names=["id"])), Col("scope", scope)]


def _resource_attrs(batch: pa.RecordBatch, dicts: StreamDicts, parse: Parse) -> list[Table]:
    text = view(batch).resource_json
    last = dicts.resource_tables
    # The resource rarely changes within a stream: reuse its columns while its dictionaries stand still.
    if last is not None and last[:3] == (text, dicts.res_key.generation, dicts.res_str.generation):
        return last[3]
    tables = _resource_table(text, dicts, parse)
    dicts.resource_tables = (text, dicts.res_key.generation, dicts.res_str.generation, tables)
    return tables


def _resource_table(text: str, dicts: StreamDicts, parse: Parse) -> list[Table]:
    key = ("resource", text)
    hit = dicts.plans.get(key)
    if hit is None:
        try:
            entries = parse(text)
        except ValueError as exc:
            raise OtapEncodeError(f"bad resource metadata: {exc}") from exc
        table = EntryTable()
        table.add_set(entries)
        hit = ([0], plan_of(table) if table.entries else None)
        dicts.plans.put(key, hit)
    plan = hit[1]
    if plan is None:
        return []
    cols = attribute_columns(plan, pa.array([0], pa.int64()), dicts.res_key, dicts.res_str, 16)
    return [] if cols is None else [(RESOURCE_ATTRS, cols)]


def _attribute_sets(
    batch: pa.RecordBatch, rows: pa.Array | None, parse: Parse, plans: PlanCache
) -> tuple[pa.Array, AttrPlan | None]:
    """Per row (in `rows` order, or batch order), the index of its attribute set in the plan (null
    when it has none): the spooled JSON attributes plus the clock-flag attributes."""
    values, idx = _dict_parts(batch, COL_ATTRIBUTES)
    flags = pc.bit_wise_and(_column(batch, COL_FLAGS).fill_null(0).cast(pa.int64()), FLAG_BITS)
    if rows is not None:
        idx, flags = idx.take(rows), flags.take(rows)
    encoded = pc.add(pc.multiply(idx, FLAG_BITS + 1), flags).dictionary_encode()
    key = tuple((values[c // (FLAG_BITS + 1)], c % (FLAG_BITS + 1)) for c in encoded.dictionary.to_pylist())
    hit = plans.get(key)
    if hit is None:
        table = EntryTable()
        set_ids: list[int | None] = []
        for text, bits in key:
            try:
                merged = {e[1]: e for e in parse(text)}
            except ValueError as exc:
                raise OtapEncodeError(f"bad attributes: {exc}") from exc
            for bit, name in FLAG_ATTRIBUTES:
                if bits & bit:
                    merged[name] = (TYPE_BOOL, name, True)
            set_ids.append(table.add_set(list(merged.values())) if merged else None)
        hit = (set_ids, plan_of(table) if table.entries else None)
        plans.put(key, hit)
    return pa.array(hit[0], pa.int64()).take(encoded.indices), hit[1]


def metrics_tables(
    batch: pa.RecordBatch, dicts: StreamDicts, parse: Parse = entries_from_json
) -> list[Table]:
    """The non-empty tables of a metrics/1 batch, root first, in the Go producer's order (§5.1)."""
    names, name_idx = _dict_parts(batch, COL_NAME)
    units, unit_idx = _dict_parts(batch, COL_UNIT)
    kinds, kind_idx = _dict_parts(batch, COL_KIND)
    nu, nk = max(len(units), 1), max(len(kinds), 1)
    combo = pc.add(pc.multiply(pc.add(pc.multiply(name_idx, nu), unit_idx), nk), kind_idx).dictionary_encode()
    descs = []
    for c in combo.dictionary.to_pylist():
        ni, rest = divmod(c, nu * nk)
        ui, ki = divmod(rest, nk)
        kind = kinds[ki]
        if kind not in KINDS:
            raise OtapEncodeError(f"unknown metric kind {kind!r} (expected one of {sorted(KINDS)})")
        mtype, temporality, monotonic = KINDS[kind]
        descs.append((mtype, names[ni], units[ui], temporality, monotonic))
    metrics = sorted(set(descs), key=lambda d: (d[0], d[1], d[2], d[3] or 0, -1 if d[4] is None else d[4]))
    if len(metrics) > MAX_IDS_16:
        raise OtapEncodeError(f"{len(metrics)} metrics in one batch; at most {MAX_IDS_16} (split_for_otap)")
    rank = {d: i for i, d in enumerate(metrics)}
    metric_of_row = pa.array([rank[d] for d in descs], pa.int64()).take(combo.indices)
    # Arrow's sort_indices is stable: points keep the spool's (series, time) order within a metric.
    order = pc.sort_indices(metric_of_row)
    m, n = len(metrics), batch.num_rows

    seq = pa.array(range(m), pa.int64())
    root = [
        Col("id", row_delta(seq, 16), nullable=False),
        *_resource_scope(m, dicts),
        Col("metric_type", pa.array([d[0] for d in metrics], pa.uint8()), nullable=False),
        Col("name", dicts.name.encode([d[1] for d in metrics], seq), nullable=False),
        Col("unit", dicts.unit.encode([d[2] for d in metrics], seq)),
        Col("aggregation_temporality", pa.array([d[3] for d in metrics], pa.int32()), optional=True),
        Col("is_monotonic", pa.array([d[4] for d in metrics], pa.bool_()), optional=True),
    ]
    # Every point gets an id: non-null delta of 0, 1, 2, ... is stored 0, 1, 1, ... (§4.2 rule 2).
    point_ids = pa.concat_arrays(
        [pa.array([0], pa.uint32()), pa.repeat(pa.scalar(1, pa.uint32()), max(n - 1, 0))]
    ).slice(0, n)
    points = [
        Col("id", point_ids),
        Col("parent_id", row_delta(metric_of_row.take(order), 16), nullable=False),
        Col("start_time_unix_nano", _timestamps(_column(batch, COL_START_TIME)).take(order), optional=True),
        Col("time_unix_nano", _timestamps(_column(batch, COL_TIME)).take(order), nullable=False),
        Col("int_value", _column(batch, COL_INT, pa.int64()).take(order), optional=True),
        Col("double_value", _column(batch, COL_DOUBLE, pa.float64()).take(order), optional=True),
    ]
    tables: list[Table] = [(UNIVARIATE_METRICS, root), *_resource_attrs(batch, dicts, parse)]
    if n:
        tables.append((NUMBER_DATA_POINTS, points))
        set_of_point, plan = _attribute_sets(batch, order, parse, dicts.plans)
        if plan is not None:
            attrs = attribute_columns(plan, set_of_point, dicts.attr_key, dicts.attr_str, 32)
            if attrs is not None:
                tables.append((NUMBER_DP_ATTRS, attrs))
    return tables


def logs_tables(
    batch: pa.RecordBatch, dicts: StreamDicts, parse: Parse = entries_from_json
) -> list[Table]:
    """The non-empty tables of a logs/1 batch, root first (§6.4); records keep the spool's order."""
    n = batch.num_rows
    set_of_row, plan = _attribute_sets(batch, None, parse, dicts.plans)
    has_attrs = pc.is_valid(set_of_row)
    attributed = pc.sum(has_attrs.cast(pa.int64())).as_py() or 0
    if attributed > MAX_IDS_16:
        raise OtapEncodeError(
            f"{attributed} log records with attributes; at most {MAX_IDS_16} (split_for_otap)"
        )
    log_ids = pc.if_else(
        has_attrs, pc.subtract(pc.cumulative_sum(has_attrs.cast(pa.int64())), 1), pa.scalar(None, pa.int64())
    )
    texts, text_idx = _dict_parts(batch, COL_SEVERITY_TEXT)
    body = pa.StructArray.from_arrays(
        [
            _column(batch, COL_BODY_TYPE, pa.uint8()),
            _column(batch, COL_BODY_STR, pa.string()),
            _column(batch, COL_BODY_INT, pa.int64()),
            _column(batch, COL_BODY_DOUBLE, pa.float64()),
            _column(batch, COL_BODY_BOOL, pa.bool_()),
            _column(batch, COL_BODY_BYTES, pa.binary()),
        ],
        names=["type", "str", "int", "double", "bool", "bytes"],
    )
    root = [
        Col("id", nonnull_delta(log_ids, 16)),
        *_resource_scope(n, dicts),
        Col("time_unix_nano", _timestamps(_column(batch, COL_TIME))),
        Col("severity_number", _column(batch, COL_SEVERITY_NUMBER, pa.int32())),
        Col("severity_text", dicts.severity_text.encode(texts, text_idx)),
        Col("body", body),
    ]
    tables: list[Table] = [(LOGS, root), *_resource_attrs(batch, dicts, parse)]
    attrs = None
    if plan is not None:
        attrs = attribute_columns(plan, set_of_row.filter(has_attrs), dicts.attr_key, dicts.attr_str, 16)
    if attrs is not None:
        tables.append((LOG_ATTRS, attrs))
    return tables
