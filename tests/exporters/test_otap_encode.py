"""OTAP encoder without Go: id encodings against decoders written from the spec's rules (otap-wire.md
§4.2), attribute tables, and the IPC stream discipline of §3 (message sequences, schema ids, delta
dictionaries, widening, strategy B, recovery). The Go consumer checks the same data in
test_otap_interop.py."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecollect.batch import Rows, build_logs, build_metrics
from edgecollect.exporters.otap_attrs import (
    Entry,
    EntryTable,
    attribute_table,
    entries_of,
    nonnull_delta,
    quasi_delta,
    row_delta,
)
from edgecollect.exporters.otap_encode import OtapEncodeError, OtapStreamEncoder, split_for_otap
from edgecollect.exporters.otap_ipc import DictColumn
from edgecollect.exporters.proto import arrow_service_pb2 as pb
from edgecollect.model import LogRecord, Resource, Series, SeriesRegistry, attrs

T = 1_700_000_000_000_000_000
RES = Resource(attrs({"host.name": "pi4"}))
U16, U32 = 1 << 16, 1 << 32


# -- reference decoders, straight from otap-wire.md §4.2 ---------------------------------------


def decode_row_delta(stored: Sequence[int], mod: int) -> list[int]:
    out, acc = [], 0
    for s in stored:
        acc = (acc + s) % mod
        out.append(acc)
    return out


def decode_nonnull_delta(stored: Sequence[int | None], mod: int) -> list[int | None]:
    out: list[int | None] = []
    acc = 0
    for s in stored:
        if s is None:
            out.append(None)
        else:
            acc = (acc + s) % mod
            out.append(acc)
    return out


def go_equal(a: tuple[int, object], b: tuple[int, object]) -> bool:
    """carrow.Equal: same type code in {str, int, double, bool, bytes} and equal values (double ==)."""
    (ta, va), (tb, vb) = a, b
    return ta == tb and ta in (1, 2, 3, 4, 7) and va == vb


def decode_attrs(table: pa.RecordBatch, mod: int) -> dict[int, dict[str, tuple[int, object]]]:
    """AttrsParentIDDecoder.Decode plus attribute lookup by parent, as the Go consumer does it."""
    rows = table.to_pylist()
    out: dict[int, dict[str, tuple[int, object]]] = {}
    prev_key: str | None = None
    prev_val: tuple[int, object] | None = None
    prev_parent = 0
    columns = {1: "str", 2: "int", 3: "double", 4: "bool", 7: "bytes"}
    for i, r in enumerate(rows):
        t = r["type"]
        col = columns.get(t)
        zero = {1: "", 2: 0, 3: 0.0, 4: False, 7: b""}.get(t)
        v = r.get(col, zero) if col else None
        val = (t, zero if v is None else v)
        if i > 0 and r["key"] == prev_key and prev_val is not None and go_equal(val, prev_val):
            parent = (prev_parent + r["parent_id"]) % mod
        else:
            parent = r["parent_id"]
        prev_key, prev_val, prev_parent = r["key"], val, parent
        out.setdefault(parent, {})[r["key"]] = val
    return out


# -- id encodings --------------------------------------------------------------------------------


def test_row_delta_round_trips_and_wraps() -> None:
    values = [0, 1, 1, 5, 3, 65_535, 0]
    stored = row_delta(pa.array(values, pa.int64()), 16)
    assert stored.type == pa.uint16()
    assert stored.to_pylist()[:4] == [0, 1, 0, 4]
    assert stored.to_pylist()[4] == U16 - 2  # 3 - 5 wraps like Go's uint16
    assert decode_row_delta(stored.to_pylist(), U16) == values


def test_nonnull_delta_skips_nulls_without_moving_the_running_value() -> None:
    values = [None, 0, None, None, 1, 2, None, 7]
    stored = nonnull_delta(pa.array(values, pa.int64()), 16).to_pylist()
    assert stored == [None, 0, None, None, 1, 1, None, 5]
    assert decode_nonnull_delta(stored, U16) == values


def test_quasi_delta_is_absolute_unless_key_and_value_repeat() -> None:
    # §7.5 counter-example: the same (key, value) for parents 3 and 5 is stored 3, 2, not 3, 5.
    assert quasi_delta(pa.array([3, 5]), pa.array([0, 0]), 32).to_pylist() == [3, 2]
    # Different values (classes) → absolute; a null class (map, slice, empty, NaN) never equals.
    assert quasi_delta(pa.array([0, 1]), pa.array([0, 1]), 32).to_pylist() == [0, 1]
    assert quasi_delta(pa.array([4, 9]), pa.array([None, None], pa.int64()), 32).to_pylist() == [4, 9]


@pytest.mark.parametrize(
    ("a", "b", "delta"),
    [
        ((3, "k", 0.0), (3, "k", -0.0), True),  # Go: 0.0 == -0.0
        ((3, "k", math.nan), (3, "k", math.nan), False),  # Go: NaN != NaN
        ((4, "k", True), (2, "k", 1), False),  # type codes differ
        ((1, "k", "x"), (1, "j", "x"), False),  # keys differ
        ((2, "k", 7), (2, "k", 7), True),
    ],
)
def test_attribute_table_applies_go_equality_between_adjacent_rows(a: Entry, b: Entry, delta: bool) -> None:
    table = EntryTable()
    table.add_set([a])
    table.add_set([b])
    # Parents 3 and 5: a delta is stored as ±2, an absolute parent as 3 or 5.
    parents = pa.array([None, None, None, 0, None, 1], pa.int64())
    cols = attribute_table(parents, table, DictColumn("u8"), DictColumn("u16"), 32)
    assert cols is not None
    batch = _batch(cols)
    decoded = decode_attrs(batch, U32)
    assert set(decoded) == {3, 5}
    got = {p: next(iter(v.values())) for p, v in decoded.items()}
    for parent, (t, _, v) in ((3, a), (5, b)):
        gt, gv = got[parent]
        assert gt == t
        assert gv == v or (isinstance(v, float) and math.isnan(v) and math.isnan(gv))  # type: ignore[arg-type]
        if isinstance(v, float):
            assert math.copysign(1, gv) == math.copysign(1, v)  # type: ignore[arg-type]
    stored = batch.column("parent_id").to_pylist()
    assert stored[0] in (3, 5)
    assert stored[1] == ((2 if stored[0] == 3 else U32 - 2) if delta else 8 - stored[0])


def _batch(cols: Sequence[object]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([c.array for c in cols], names=[c.name for c in cols])  # type: ignore[attr-defined]


attr_value = st.one_of(
    st.text(max_size=3),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0.0, -0.0, 1.5, math.inf, -2.25]),
    st.booleans(),
    st.binary(max_size=2),
)
attr_set = st.dictionaries(st.sampled_from(["a", "b", "cpu", "dev", "é"]), attr_value, max_size=4)


@settings(max_examples=200, deadline=None)
@given(st.lists(attr_set, min_size=1, max_size=40), st.sampled_from([16, 32]))
def test_attribute_table_decodes_to_every_parents_attributes(
    sets: list[dict[str, object]], bits: int
) -> None:
    table = EntryTable()
    set_of_parent: list[int | None] = []
    for s in sets:
        set_of_parent.append(table.add_set(entries_of(s)) if s else None)
    parents = pa.array(set_of_parent, pa.int64())
    cols = attribute_table(parents, table, DictColumn("u8"), DictColumn("u16"), bits)
    expected = {p: {k: _typed(v) for k, v in s.items()} for p, s in enumerate(sets) if s}
    if cols is None:
        assert not expected
        return
    batch = _batch(cols)
    assert batch.column("parent_id").type == (pa.uint16() if bits == 16 else pa.uint32())
    assert not pa.types.is_dictionary(batch.column("type").type)
    assert decode_attrs(batch, 1 << bits) == expected


def _typed(v: object) -> tuple[int, object]:
    if isinstance(v, bool):
        return (4, v)
    if isinstance(v, int):
        return (2, v)
    if isinstance(v, float):
        return (3, v)
    if isinstance(v, bytes):
        return (7, v)
    return (1, v)


# -- IPC discipline ------------------------------------------------------------------------------


def metrics_batch(
    n_series: int, per_series: int = 2, name_prefix: str = "m", t0: int = T, names: int = 7
) -> pa.RecordBatch:
    reg = SeriesRegistry()
    sids, times, floats, ints, flags = [], [], [], [], []
    for s in range(n_series):
        sid = reg.intern(Series(f"{name_prefix}{s % names}", "1", "gauge", attrs(dev=f"d{s}")))
        for k in range(per_series):
            sids.append(sid)
            times.append(t0 + k)
            floats.append(float(s + k))
            ints.append(0)
            flags.append(0)
    return build_metrics(Rows(sids, times, floats, ints, flags), reg, RES, "boot")


def messages(record: bytes) -> list[tuple[str, bool]]:
    """(message type, isDelta) for each encapsulated IPC message in a payload."""
    out = []
    for m in pa.ipc.MessageReader.open_stream(pa.py_buffer(record)):
        out.append((m.type, m.type == "dictionary" and _is_delta(m.metadata.to_pybytes())))
    return out


def _is_delta(fb: bytes) -> bool:
    # Flatbuffer walk: Message.header (field 2) → DictionaryBatch.isDelta (field 2).
    def field(table: int, idx: int) -> int | None:
        vtable = table - struct.unpack_from("<i", fb, table)[0]
        vlen = struct.unpack_from("<H", fb, vtable)[0]
        if 4 + 2 * idx >= vlen:
            return None
        off = struct.unpack_from("<H", fb, vtable + 4 + 2 * idx)[0]
        return table + off if off else None

    root = struct.unpack_from("<I", fb, 0)[0]
    hdr = field(root, 2)
    assert hdr is not None
    dict_batch = hdr + struct.unpack_from("<I", fb, hdr)[0]
    flag = field(dict_batch, 2)
    return flag is not None and fb[flag] == 1


def test_first_bar_has_schema_and_all_dictionaries_then_one_record_batch() -> None:
    enc = OtapStreamEncoder("metrics", ipc_compression="none")
    bar = enc.encode(metrics_batch(2, 1))
    types = [p.type for p in bar.arrow_payloads]
    assert types == [pb.UNIVARIATE_METRICS, pb.RESOURCE_ATTRS, pb.NUMBER_DATA_POINTS, pb.NUMBER_DP_ATTRS]
    assert [p.schema_id for p in bar.arrow_payloads] == ["0", "1", "2", "3"]
    assert bar.batch_id == 0 and enc.next_batch_id == 1
    for p in bar.arrow_payloads:
        seq = [t for t, _ in messages(p.record)]
        assert seq[0] == "schema" and seq[-1] == "record batch"
        assert set(seq[1:-1]) <= {"dictionary"}
        assert not p.record.endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00")  # R6: no end-of-stream
    # UNIVARIATE_METRICS: scope.name, scope.version, name, unit dictionaries.
    assert [t for t, _ in messages(bar.arrow_payloads[0].record)].count("dictionary") == 4


def test_later_bars_continue_streams_with_delta_dictionaries_only() -> None:
    enc = OtapStreamEncoder("metrics")
    first = enc.encode(metrics_batch(3))
    same = enc.encode(metrics_batch(3, t0=T + 10))
    grown = enc.encode(metrics_batch(9, t0=T + 20))  # new names m3..m6 and new dev values
    assert [p.schema_id for p in same.arrow_payloads] == [p.schema_id for p in first.arrow_payloads]
    for p in same.arrow_payloads:
        assert messages(p.record) == [("record batch", False)]
    root = messages(grown.arrow_payloads[0].record)
    assert root == [("dictionary", True), ("record batch", False)]
    assert [p.schema_id for p in grown.arrow_payloads] == [p.schema_id for p in first.arrow_payloads]
    # pyarrow reads each continued stream back: one record batch per payload, in order.
    streams: dict[str, bytes] = {}
    for bar in (first, same, grown):
        for p in bar.arrow_payloads:
            streams[p.schema_id] = streams.get(p.schema_id, b"") + p.record
    names = pa.ipc.open_stream(streams["0"]).read_all().column("name").to_pylist()
    assert names == ["m0", "m1", "m2"] * 2 + [f"m{i}" for i in range(7)]


def test_schema_change_takes_a_new_schema_id_never_reused() -> None:
    enc = OtapStreamEncoder("metrics")
    seen: set[str] = set()
    ids_per_bar = []
    for i in range(4):
        # 100 new metric names per batch: the name dictionary passes 255 values and widens to uint16.
        bar = enc.encode(metrics_batch(100, 1, name_prefix=f"b{i}.", t0=T + i, names=100))
        ids = {p.type: p.schema_id for p in bar.arrow_payloads}
        ids_per_bar.append(ids)
        earlier = {s for prev in ids_per_bar[:-1] for s in prev.values()}
        new = {sid for sid in ids.values() if sid not in earlier}
        for p in bar.arrow_payloads:
            if p.schema_id in new:
                assert messages(p.record)[0][0] == "schema"
                assert p.schema_id not in seen
            else:
                assert messages(p.record)[0][0] != "schema"
        seen |= set(ids.values())
    root_ids = [ids[pb.UNIVARIATE_METRICS] for ids in ids_per_bar]
    assert root_ids[0] == root_ids[1] != root_ids[2] == root_ids[3]  # widened at the third batch
    assert len(set(map(int, seen))) == len(seen)


def test_self_contained_payloads_decode_alone_under_fresh_ids() -> None:
    enc = OtapStreamEncoder("metrics", self_contained=True)
    ids: list[str] = []
    for i in range(3):
        bar = enc.encode(metrics_batch(5, t0=T + i))
        for p in bar.arrow_payloads:
            ids.append(p.schema_id)
            assert pa.ipc.open_stream(p.record).read_all().num_rows > 0
    assert len(ids) == len(set(ids))


def test_reset_to_self_contained_switches_to_strategy_b() -> None:
    enc = OtapStreamEncoder("metrics")
    a = enc.encode(metrics_batch(5))
    enc.reset_to_self_contained()
    b = enc.encode(metrics_batch(5))
    assert b.batch_id == 1
    assert not {p.schema_id for p in a.arrow_payloads} & {p.schema_id for p in b.arrow_payloads}
    assert all(messages(p.record)[0][0] == "schema" for p in b.arrow_payloads)


def test_encoder_error_restarts_every_table_under_new_ids() -> None:
    enc = OtapStreamEncoder("metrics")
    first = enc.encode(metrics_batch(3))
    bad = metrics_batch(3)
    bad = bad.replace_schema_metadata({**bad.schema.metadata, b"edgecollect.resource": b"[1]"})
    with pytest.raises(OtapEncodeError):
        enc.encode(bad)
    nxt = enc.encode(metrics_batch(3))
    assert nxt.batch_id == 1  # the failed batch took no id
    assert not {p.schema_id for p in first.arrow_payloads} & {p.schema_id for p in nxt.arrow_payloads}
    assert all(messages(p.record)[0][0] == "schema" for p in nxt.arrow_payloads)


def test_rejects_wrong_signal_and_empty_batches() -> None:
    with pytest.raises(OtapEncodeError, match="metrics/1"):
        OtapStreamEncoder("metrics").encode(build_logs([LogRecord(T, "x")], RES, "boot"))
    with pytest.raises(OtapEncodeError, match="empty"):
        OtapStreamEncoder("metrics").encode(metrics_batch(0))
    with pytest.raises(OtapEncodeError, match="kind"):
        b = metrics_batch(1)
        kind = pa.DictionaryArray.from_arrays(pa.array([0, 0], pa.int8()), pa.array(["histogram"]))
        OtapStreamEncoder("metrics").encode(b.set_column(2, "kind", kind))


def test_logs_tables_and_ids() -> None:
    recs = [
        LogRecord(T, "a", attributes=attrs(src="x")),
        LogRecord(T + 1, 7),
        LogRecord(T + 2, b"\x00\xff", attributes=attrs(src="y")),
    ]
    bar = OtapStreamEncoder("logs").encode(build_logs(recs, RES, "boot", flags=1))
    assert [p.type for p in bar.arrow_payloads] == [pb.LOGS, pb.RESOURCE_ATTRS, pb.LOG_ATTRS]
    logs = pa.ipc.open_stream(bar.arrow_payloads[0].record).read_all()
    # flags=1 marks every record, so all three have attributes: ids 0, 1, 2 stored 0, 1, 1.
    assert logs.column("id").to_pylist() == [0, 1, 1]
    attrs_table = pa.ipc.open_stream(bar.arrow_payloads[2].record).read_all().to_batches()[0]
    assert decode_attrs(attrs_table, U16) == {
        0: {"src": (1, "x"), "edgecollect.clock.unsynced": (4, True)},
        1: {"edgecollect.clock.unsynced": (4, True)},
        2: {"src": (1, "y"), "edgecollect.clock.unsynced": (4, True)},
    }


def test_dictionary_column_widens_resets_and_goes_plain() -> None:
    col = DictColumn("u8")
    codes = pa.array(range(200), pa.int64())
    assert col.encode([f"v{i}" for i in range(200)], codes).type.index_type == pa.uint8()
    grown = col.encode([f"w{i}" for i in range(200)], codes)
    assert grown.type.index_type == pa.uint16() and len(grown.dictionary) == 400
    big = pa.array(range(70_000), pa.int64())
    assert col.encode([f"x{i}" for i in range(70_000)], big).type == pa.string()
    u16 = DictColumn("u16")
    u16.encode([f"a{i}" for i in range(60_000)], pa.array(range(60_000), pa.int64()))
    again = u16.encode([f"b{i}" for i in range(10_000)], pa.array(range(10_000), pa.int64()))
    assert len(again.dictionary) == 10_000  # started over instead of overflowing uint16
    assert again.dictionary[0].as_py() == "b0"


def test_dictionary_column_starts_over_past_its_byte_budget() -> None:
    col = DictColumn("u16", max_bytes=4_000)
    first = col.encode([f"{i:04d}" + "x" * 400 for i in range(5)], pa.array(range(5), pa.int64()))
    assert len(first.dictionary) == 5
    second = col.encode([f"{i:04d}" + "y" * 400 for i in range(5)], pa.array(range(5), pa.int64()))
    assert len(second.dictionary) == 5  # 4 KB would be passed: replaced, not grown
    again = col.encode([f"{i:04d}" + "y" * 400 for i in range(2)], pa.array([1, 0], pa.int64()))
    assert again.dictionary.equals(second.dictionary) and again.indices.to_pylist() == [1, 0]


def test_split_for_otap_cuts_only_what_does_not_fit() -> None:
    small = metrics_batch(10)
    assert split_for_otap(small) == [small]
    many_points = metrics_batch(10, per_series=7_000)  # 70,000 rows but only 7 metrics: one BAR
    assert split_for_otap(many_points) == [many_points]
    assert len(OtapStreamEncoder("metrics").encode(many_points).arrow_payloads) == 4
    recs = [LogRecord(T + i, "x", attributes=attrs(i=i)) for i in range(70_000)]
    logs = build_logs(recs, RES, "boot")
    parts = split_for_otap(logs)
    assert [p.num_rows for p in parts] == [65_535, 4_465]
    assert all(p.schema.metadata == logs.schema.metadata for p in parts)
    with pytest.raises(OtapEncodeError, match="65535"):
        OtapStreamEncoder("logs").encode(logs)
    assert json.loads(parts[1].schema.metadata[b"edgecollect.resource"]) == {"host.name": "pi4"}
