"""OTAP attribute tables and the three id encodings (otap-wire.md §4.2, §4.3), in pyarrow.compute.

Owns: turning attribute sets (our spooled JSON objects) into typed entries (type code, key, value) with
the OTel value codes 1 str, 2 int, 3 double, 4 bool (0 empty for JSON null; nested JSON values are sent
as their compact JSON text, type 1, since nothing we spool produces them); building one attribute table
(`parent_id`, `key`, `type`, and the value columns `str`, `int`, `double`, `bool`, `bytes` — each
sent once a row of its type has appeared on the stream) sorted by (type, key, value, parent) like
the Go producer; and the transport encodings the Go decoder always undoes: row delta, non-null delta and
the attribute quasi-delta, whose "same value" test mirrors Go's `carrow.Equal` exactly (str/int/double/
bool compared by value, doubles with `==` so 0.0 equals -0.0 and NaN equals nothing, empty never equal).

Must never: emit a `parent_id` that decodes to another parent (pitfall 15), dictionary-encode the
`type`, `double` or `bool` columns (pitfall 10), or loop over rows in Python: loops here run over
distinct attribute sets and entries only; rows go through pyarrow.compute.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from edgecollect.exporters.otap_ipc import Col, DictColumn, as_type

TYPE_EMPTY, TYPE_STR, TYPE_INT, TYPE_DOUBLE, TYPE_BOOL, TYPE_BYTES = 0, 1, 2, 3, 4, 7
# Codes whose values Go's carrow.Equal can find equal; map, slice and empty never are.
_COMPARABLE = frozenset((TYPE_STR, TYPE_INT, TYPE_DOUBLE, TYPE_BOOL, TYPE_BYTES))
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1

AttrValue = str | int | float | bool | bytes | None
Entry = tuple[int, str, AttrValue]


def typed_entry(key: str, value: object) -> Entry:
    """One attribute as (OTel type code, key, value)."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return (TYPE_BOOL, key, value)
    if isinstance(value, int):
        if _I64_MIN <= value <= _I64_MAX:
            return (TYPE_INT, key, value)
        return (TYPE_STR, key, str(value))  # JSON allows integers OTLP cannot carry
    if isinstance(value, float):
        return (TYPE_DOUBLE, key, value)
    if isinstance(value, str):
        return (TYPE_STR, key, value)
    if isinstance(value, bytes):
        return (TYPE_BYTES, key, value)
    if value is None:
        return (TYPE_EMPTY, key, None)
    return (TYPE_STR, key, json.dumps(value, separators=(",", ":"), sort_keys=True))


def entries_of(attributes: Mapping[str, object]) -> tuple[Entry, ...]:
    """Typed entries of an attribute mapping; empty keys are dropped as the Go producer does."""
    return tuple(typed_entry(k, v) for k, v in attributes.items() if k)


def entries_from_json(text: str) -> tuple[Entry, ...]:
    """Typed entries of one spooled attributes JSON object (raises ValueError if it is not one)."""
    obj = json.loads(text) if text else {}
    if not isinstance(obj, dict):
        raise ValueError(f"attributes are not a JSON object: {text[:80]!r}")
    return entries_of(obj)


def _exact(e: Entry) -> Hashable:
    # Identity of an entry as stored: keeps 0.0 and -0.0 apart (they are different values to send).
    # The type code keeps True, 1 and 1.0 apart.
    v = e[2]
    return (e[0], e[1], v.hex()) if type(v) is float else e


def _sort_key(e: Entry) -> tuple[int, str, tuple[int, object]]:
    t, k, v = e
    if isinstance(v, float):
        return (t, k, (1, 0.0) if math.isnan(v) else (0, v))
    return (t, k, (0, v if v is not None else 0))


class EntryTable:
    """The distinct entries of one attribute table of one batch, and the sets that use them."""

    def __init__(self) -> None:
        self._ids: dict[Hashable, int] = {}
        self.entries: list[Entry] = []
        self.sets: list[list[int]] = []

    def add_set(self, entries: Sequence[Entry]) -> int:
        """Register a set of entries (one parent's attributes); returns the set's index."""
        ids = []
        for e in entries:
            ident = _exact(e)
            eid = self._ids.get(ident)
            if eid is None:
                eid = self._ids[ident] = len(self.entries)
                self.entries.append(e)
            ids.append(eid)
        self.sets.append(ids)
        return len(self.sets) - 1


def _wrap(values: pa.Array, bits: int) -> pa.Array:
    # Go's unsigned arithmetic: keep the low `bits` of the two's-complement difference.
    typ = pa.uint16() if bits == 16 else pa.uint32()
    return as_type(pc.bit_wise_and(values, (1 << bits) - 1), typ)


def row_delta(values: pa.Array, bits: int) -> pa.Array:
    """§4.2 rule 1: first value absolute, then differences, wrapped to `bits` (decoder: prefix sum)."""
    values = as_type(values, pa.int64())
    if len(values) < 2:
        return _wrap(values, bits)
    return _wrap(pc.fill_null(pc.pairwise_diff(values), values[0]), bits)


def nonnull_delta(values: pa.Array, bits: int) -> pa.Array:
    """§4.2 rule 2: row_delta over the non-null entries only; null entries stay null."""
    values = as_type(values, pa.int64())
    valid = pc.is_valid(values)
    dense = row_delta(values.filter(valid), bits)
    positions = pc.subtract(pc.cumulative_sum(valid.cast(pa.int64())), 1)
    return dense.take(pc.if_else(valid, positions, pa.scalar(None, pa.int64())))


def quasi_delta(parents: pa.Array, classes: pa.Array, bits: int) -> pa.Array:
    """§4.2 rule 3 for rows already sorted: delta to the previous row's parent when the previous row
    has the same key and a Go-equal value (same non-null class), else the absolute parent."""
    parents = as_type(parents, pa.int64())
    n = len(parents)
    if n < 2:
        return _wrap(parents, bits)
    same = pc.fill_null(pc.equal(classes.slice(1), classes.slice(0, n - 1)), False)
    rest = pc.if_else(same, pc.pairwise_diff(parents).slice(1), parents.slice(1))
    return _wrap(pa.concat_arrays([parents.slice(0, 1), rest]), bits)


def _go_classes(entries: Sequence[Entry]) -> pa.Array:
    """Per entry, an id equal for entries Go's carrow.Equal (plus same key) finds equal; null: never."""
    ids: dict[Hashable, int] = {}
    out: list[int | None] = []
    for t, k, v in entries:
        if t not in _COMPARABLE or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            # Python == on (type, key, value) is Go's rule here: 0.0 == -0.0, and the type code keeps
            # True apart from 1.
            out.append(ids.setdefault((t, k, v), len(ids)))
    return pa.array(out, pa.int64())


@dataclass(frozen=True, slots=True)
class AttrPlan:
    """Everything about an attribute table that depends only on its distinct attribute sets, not on
    which parents use them: computed once and reused while a stream sends the same series."""

    set_ranks: pa.Array  # list<int64>: per set, the sorted ranks of its entries
    classes: pa.Array  # per rank: Go-equality class, null for never-equal
    types: pa.Array  # per rank: uint8 type code
    key_distinct: list[str]
    key_codes: pa.Array  # per rank: index into key_distinct
    str_distinct: list[object]
    str_codes: pa.Array  # per rank: index into str_distinct, null unless type str
    values: dict[str, pa.Array]  # column name → per-rank value, null unless that type


def plan_of(table: EntryTable) -> AttrPlan:
    """The sorted entries of `table` (by type, key, value) and their per-rank columns."""
    entries = table.entries
    order = sorted(range(len(entries)), key=lambda i: _sort_key(entries[i]))
    ranked = [entries[i] for i in order]
    rank_of = [0] * len(entries)
    for r, i in enumerate(order):
        rank_of[i] = r
    key_distinct = list(dict.fromkeys(e[1] for e in ranked))
    key_index = {k: i for i, k in enumerate(key_distinct)}
    str_distinct: dict[object, int] = {}
    str_codes = [
        str_distinct.setdefault(e[2], len(str_distinct)) if e[0] == TYPE_STR else None for e in ranked
    ]
    return AttrPlan(
        set_ranks=pa.array([[rank_of[e] for e in s] for s in table.sets], pa.list_(pa.int64())),
        classes=_go_classes(ranked),
        types=pa.array([e[0] for e in ranked], pa.uint8()),
        key_distinct=key_distinct,
        key_codes=pa.array([key_index[e[1]] for e in ranked], pa.int64()),
        str_distinct=list(str_distinct),
        str_codes=pa.array(str_codes, pa.int64()),
        values={
            name: pa.array([e[2] if e[0] == code else None for e in ranked], typ)
            for name, code, typ in (
                ("int", TYPE_INT, pa.int64()),
                ("double", TYPE_DOUBLE, pa.float64()),
                ("bool", TYPE_BOOL, pa.bool_()),
                ("bytes", TYPE_BYTES, pa.binary()),
            )
        },
    )


class PlanCache:
    """A small LRU of AttrPlans keyed by the batch's distinct attribute sets. Memory stays bounded:
    few entries, and plans of batches with very many distinct sets are not kept (they rarely repeat)."""

    def __init__(self, size: int = 8, max_sets: int = 4096) -> None:
        self._size = size
        self._max_sets = max_sets
        self._plans: OrderedDict[Hashable, tuple[list[int | None], AttrPlan | None]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[list[int | None], AttrPlan | None] | None:
        hit = self._plans.get(key)
        if hit is not None:
            self._plans.move_to_end(key)
        return hit

    def put(self, key: Hashable, value: tuple[list[int | None], AttrPlan | None]) -> None:
        if len(value[0]) > self._max_sets:
            return
        self._plans[key] = value
        if len(self._plans) > self._size:
            self._plans.popitem(last=False)


def attribute_table(
    set_of_parent: pa.Array, table: EntryTable, keys: DictColumn, strs: DictColumn, parent_bits: int
) -> list[Col] | None:
    """The columns of the attribute table for parents 0..n-1 whose attributes are
    `table.sets[set_of_parent[p]]` (null: none), sorted by (type, key, value, parent) and quasi-delta
    encoded; None when it has no rows."""
    if not table.entries:
        return None
    return attribute_columns(plan_of(table), set_of_parent, keys, strs, parent_bits)


def attribute_columns(
    plan: AttrPlan, set_of_parent: pa.Array, keys: DictColumn, strs: DictColumn, parent_bits: int
) -> list[Col] | None:
    """attribute_table() for a ready plan: the per-row work, all in pyarrow.compute."""
    valid = pc.is_valid(set_of_parent)
    parents = as_type(pc.indices_nonzero(valid), pa.int64())
    per_parent = plan.set_ranks.take(set_of_parent.filter(valid))
    e_rows = pc.list_flatten(per_parent)
    if len(e_rows) == 0:
        return None
    p_rows = parents.take(pc.list_parent_indices(per_parent))
    keys_table = pa.table({"e": e_rows, "p": p_rows})
    sort = pc.sort_indices(keys_table, sort_keys=[("e", "ascending"), ("p", "ascending")])
    e_rows, p_rows = e_rows.take(sort), p_rows.take(sort)
    return [
        Col("parent_id", quasi_delta(p_rows, plan.classes.take(e_rows), parent_bits), nullable=False),
        Col("key", keys.encode(plan.key_distinct, plan.key_codes.take(e_rows)), nullable=False),
        Col("type", plan.types.take(e_rows), nullable=False),
        Col("str", strs.encode(plan.str_distinct, plan.str_codes.take(e_rows)), optional=True),
        *(Col(name, values.take(e_rows), optional=True) for name, values in plan.values.items()),
    ]
