"""build_metrics fills its columns per series run, not per row: the batch (and its IPC bytes) must be
exactly what the row-by-row construction gives, for every kind of row the ring holds."""

from __future__ import annotations

import json
from array import array

import pyarrow as pa

from edgecollect import batch as batch_module
from edgecollect.batch import Rows, build_metrics, to_ipc
from edgecollect.buffer import FLAG_INT
from edgecollect.format.reader import METRICS_FIELDS, TS, batch_metadata
from edgecollect.model import Resource, Series, SeriesRegistry, attrs

RESOURCE = Resource(attrs({"host.name": "gw-1"}))
T = 1_700_000_000_000_000_000


def reference(rows: Rows, registry: SeriesRegistry, resource: Resource, boot_id: str) -> pa.RecordBatch:
    """The row-by-row construction build_metrics had before (the expected output)."""
    n = len(rows.series_ids)
    order = sorted(range(n), key=rows.series_ids.__getitem__)
    distinct = sorted(set(rows.series_ids))
    dicts: list[dict[str, int]] = [{}, {}, {}, {}]
    codes = {}
    for sid in distinct:
        s = registry.series(sid)
        text = json.dumps(dict(s.attributes), separators=(",", ":"), sort_keys=True, allow_nan=False)
        codes[sid] = [d.setdefault(v, len(d)) for d, v in zip(dicts, (s.name, s.unit, s.kind, text), strict=True)]
    idx: list[list[int]] = [[], [], [], []]
    starts, times, doubles, ints, flags = [], [], [], [], []
    for i in order:
        sid = rows.series_ids[i]
        for col, code in zip(idx, codes[sid], strict=True):
            col.append(code)
        start = registry.start_time_ns(sid)
        if start < 0:
            start += rows.times_ns[i]
        starts.append(start or None)
        times.append(rows.times_ns[i])
        f = rows.flags[i]
        doubles.append(None if f & FLAG_INT else rows.floats[i])
        ints.append(rows.ints[i] if f & FLAG_INT else None)
        flags.append(f & ~FLAG_INT)
    types = (pa.int32(), pa.int32(), pa.int8(), pa.int32())
    columns = [
        pa.DictionaryArray.from_arrays(pa.array(col, typ), pa.array(list(d), pa.string()))
        for col, d, typ in zip(idx, dicts, types, strict=True)
    ]
    columns += [pa.array(starts, TS), pa.array(times, TS), pa.array(doubles, pa.float64()),
                pa.array(ints, pa.int64()), pa.array(flags, pa.uint8())]
    text = json.dumps(dict(resource.attributes), separators=(",", ":"), sort_keys=True, allow_nan=False)
    schema = pa.schema(METRICS_FIELDS, metadata=batch_metadata("metrics/1", text, boot_id))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def mixed_rows(registry: SeriesRegistry, with_ints: bool) -> Rows:
    """Interleaved series of every start-time sort (none, absolute, relative), shared names/units,
    clock flags, and (optionally) integer readings among the floats."""
    specs = [
        (Series("temp", "Cel", "gauge", attrs(dev="a")), 0),
        (Series("temp", "Cel", "gauge", attrs(dev="b")), 0),
        (Series("energy", "Wh", "cumulative", attrs(dev="a", phase=1)), T - 5_000),
        (Series("rate", "1/s", "delta", attrs(dev="c", on=True)), -1_000),  # relative start
        (Series("level", "", "updown", ()), 0),
        (Series("edge", "1", "delta", attrs(x=1.5)), -(T + 7)),  # relative start that lands on 0 once
    ]
    sids = [registry.intern(s, start) for s, start in specs]
    cols: tuple[list[int], list[int], list[float], list[int], list[int]] = ([], [], [], [], [])
    for k in range(40):
        sid = sids[(k * 5) % len(sids)]
        is_int = with_ints and k % 3 == 0
        flag = (k % 4) & 0x3
        time = T + 7 if k == 11 else T + k * 1_000  # k == 11: start + time == 0 for "edge"
        for col, value in zip(cols, (sid, time, 0.0 if is_int else k / 4 - 3, k * 11 if is_int else 0,
                                     flag | (FLAG_INT if is_int else 0)), strict=True):
            col.append(value)  # type: ignore[arg-type]
    return Rows(array("I", cols[0]), array("q", cols[1]), array("d", cols[2]), array("q", cols[3]),
                array("B", cols[4]))


def test_float_only_batch_is_the_row_by_row_batch() -> None:
    registry = SeriesRegistry()
    rows = mixed_rows(registry, with_ints=False)
    got, want = build_metrics(rows, registry, RESOURCE, "boot"), reference(rows, registry, RESOURCE, "boot")
    assert got.equals(want, check_metadata=True)
    assert to_ipc(got) == to_ipc(want)
    assert got.column(7).null_count == len(got)  # no integer readings: the int column is all null


def test_batch_with_integer_readings_is_the_row_by_row_batch() -> None:
    registry = SeriesRegistry()
    rows = mixed_rows(registry, with_ints=True)
    got, want = build_metrics(rows, registry, RESOURCE, "boot"), reference(rows, registry, RESOURCE, "boot")
    assert got.equals(want, check_metadata=True)
    assert to_ipc(got) == to_ipc(want)
    assert 0 < got.column(7).null_count < len(got)
    assert got.column(4).null_count > 0  # a relative start landing on 0 is no start, as before


def test_plain_lists_give_the_same_batch() -> None:
    registry = SeriesRegistry()
    rows = mixed_rows(registry, with_ints=True)
    as_lists = Rows(*(list(c) for c in (rows.series_ids, rows.times_ns, rows.floats, rows.ints, rows.flags)))
    assert build_metrics(as_lists, registry, RESOURCE, "b").equals(build_metrics(rows, registry, RESOURCE, "b"))


def test_equal_but_distinct_attribute_values_keep_their_own_json() -> None:
    # 1, True and 1.0 compare (and hash) equal; 0.0 and -0.0 too. The remembered JSON must not mix them
    # (one registry interns equal series as one, so each value lives in its own agent's registry).
    values: list[object] = [1, True, 1.0, 0.0, -0.0]
    texts = []
    for _ in range(2):  # the second round is served from the remembered texts
        for v in values:
            registry = SeriesRegistry()
            sid = registry.intern(Series("m", "1", "gauge", (("v", v),)))  # type: ignore[arg-type]
            b = build_metrics(Rows([sid], [T], [1.0], [0], [0]), registry, RESOURCE, "boot")
            texts.append(b.column(3).to_pylist()[0])
    assert texts == ['{"v":1}', '{"v":true}', '{"v":1.0}', '{"v":0.0}', '{"v":-0.0}'] * 2


def test_remembered_attribute_json_is_bounded() -> None:
    registry = SeriesRegistry()
    count = batch_module._ATTR_JSON_MAX + 50
    sids = [registry.intern(Series("m", "1", "gauge", attrs(dev=f"d{i}"))) for i in range(count)]
    b = build_metrics(Rows(sids, [T] * count, [0.5] * count, [0] * count, [0] * count), registry, RESOURCE, "x")
    assert b.column(3).to_pylist() == [f'{{"dev":"d{i}"}}' for i in range(count)]
    assert len(batch_module._attr_json) <= batch_module._ATTR_JSON_MAX
