"""The OTAP encoder against the real Go consumer (arrow_record.Consumer in tests/interop's sink).

Each test sends our BARs on a raw gRPC stream and compares, field by field, the OTLP JSON the sink
decoded with what the spooled batch holds: names, units, kinds, temporality, monotonicity, int and
double values, timestamps, start timestamps, attributes of every scalar type, resource and scope.
The expected side is computed from the spooled batch alone, not from encoder code.
"""

from __future__ import annotations

import base64
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from edgecollect import __version__
from edgecollect.batch import Rows, build_logs, build_metrics
from edgecollect.buffer import FLAG_INT
from edgecollect.exporters.otap_encode import OtapEncodeError, OtapStreamEncoder
from edgecollect.exporters.proto import arrow_service_pb2 as pb
from edgecollect.exporters.proto import arrow_service_pb2_grpc as pb_grpc
from edgecollect.model import (
    KINDS,
    SEVERITY_NUMBERS,
    AttrValue,
    LogRecord,
    Resource,
    Series,
    SeriesRegistry,
    attrs,
)
from tests.support.sink import Sink

pytestmark = pytest.mark.integration

T = 1_700_000_000_000_000_000
Typed = tuple[str, Any]
MakeSink = Callable[..., Sink]
# Spool kind → (OTLP data field, aggregationTemporality, isMonotonic), as pdata JSON prints them.
KIND_OTLP = {
    "gauge": ("gauge", None, False),
    "cumulative": ("sum", 2, True),
    "delta": ("sum", 1, True),
    "updown": ("sum", 2, False),
}
FLAG_KEYS = ((1, "edgecollect.clock.unsynced"), (2, "edgecollect.time.repaired"))


# -- sending -------------------------------------------------------------------------------------


def send(sink: Sink, signal: str, bars: Iterable[pb.BatchArrowRecords]) -> list[pb.BatchStatus]:
    """BARs on one raw gRPC stream; returns every BatchStatus once the sink ends the stream."""
    with grpc.insecure_channel(sink.grpc_address) as channel:
        if signal == "metrics":
            call = pb_grpc.ArrowMetricsServiceStub(channel).ArrowMetrics
        else:
            call = pb_grpc.ArrowLogsServiceStub(channel).ArrowLogs
        return list(call(iter(bars), timeout=300))


def decoded(sink: Sink, signal: str, statuses: list[pb.BatchStatus], n: int) -> list[dict[str, Any]]:
    rejected = sink.rejected()
    assert not rejected, f"sink refused: {rejected[0]['status']} {rejected[0].get('error')}"
    assert sorted(s.batch_id for s in statuses) == list(range(n))
    assert all(s.status_code == pb.OK for s in statuses), [s for s in statuses if s.status_code != pb.OK][:3]
    recs = sorted(sink.records(signal, "otap"), key=lambda r: r["batch_id"])
    assert [r["batch_id"] for r in recs] == list(range(n))
    return [r["data"] if isinstance(r["data"], dict) else json.loads(r["data"]) for r in recs]


# -- OTLP JSON (pdata JSONMarshaler) → canonical ------------------------------------------------


def typed_json(value: dict[str, Any]) -> Typed:
    if "stringValue" in value:
        return ("str", value["stringValue"])
    if "intValue" in value:
        return ("int", int(value["intValue"]))
    if "doubleValue" in value:
        return ("double", float(value["doubleValue"]))
    if "boolValue" in value:
        return ("bool", bool(value["boolValue"]))
    if "bytesValue" in value:
        return ("bytes", base64.b64decode(value["bytesValue"]))
    return ("empty", None)


def attrs_json(items: list[dict[str, Any]] | None) -> dict[str, Typed]:
    out: dict[str, Typed] = {}
    for kv in items or []:
        assert kv["key"] not in out, f"duplicate attribute {kv['key']}"
        out[kv["key"]] = typed_json(kv.get("value", {}))
    return out


def only_scope(data: dict[str, Any], kind: str) -> tuple[dict[str, Typed], dict[str, Any]]:
    """The single resource's attributes and its single scope block; checks the scope identity."""
    resources = data[f"resource{kind}"]
    assert len(resources) == 1, f"{len(resources)} resources"
    scopes = resources[0][f"scope{kind}"]
    assert len(scopes) == 1, f"{len(scopes)} scopes"
    assert scopes[0]["scope"] == {"name": "edgecollect", "version": __version__}
    return attrs_json(resources[0].get("resource", {}).get("attributes")), scopes[0]


Metrics = dict[tuple[Any, ...], list[tuple[Any, ...]]]


def metrics_json(data: dict[str, Any]) -> tuple[dict[str, Typed], Metrics]:
    resource, scope = only_scope(data, "Metrics")
    metrics: Metrics = {}
    for m in scope["metrics"]:
        field = "gauge" if "gauge" in m else "sum"
        body = m[field]
        temporality, monotonic = body.get("aggregationTemporality"), body.get("isMonotonic", False)
        key = (m["name"], m.get("unit", ""), field, temporality, monotonic)
        assert key not in metrics, f"metric {key} decoded twice"
        points = []
        for dp in body["dataPoints"]:
            value = ("int", int(dp["asInt"])) if "asInt" in dp else ("double", float(dp["asDouble"]))
            start, time = int(dp.get("startTimeUnixNano", 0)), int(dp["timeUnixNano"])
            points.append((start, time, value, attrs_json(dp.get("attributes"))))
        metrics[key] = points
    return resource, metrics


def logs_json(data: dict[str, Any]) -> tuple[dict[str, Typed], list[tuple[Any, ...]]]:
    resource, scope = only_scope(data, "Logs")
    out = []
    for lr in scope["logRecords"]:
        out.append(
            (
                int(lr.get("timeUnixNano", 0)),
                lr.get("severityNumber", 0),
                lr.get("severityText", ""),
                typed_json(lr.get("body", {})),
                attrs_json(lr.get("attributes")),
            )
        )
    return resource, out


# -- spooled batch → the same canonical form -----------------------------------------------------


def typed_py(v: object) -> Typed:
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("double", v)
    if isinstance(v, bytes):
        return ("bytes", v)
    return ("str", v)


def expected_attrs(attributes_json: str, flags: int) -> dict[str, Typed]:
    out = {k: typed_py(v) for k, v in json.loads(attributes_json).items()}
    for bit, key in FLAG_KEYS:
        if flags & bit:
            out[key] = ("bool", True)
    return out


def expected_resource(batch: pa.RecordBatch) -> dict[str, Typed]:
    return {k: typed_py(v) for k, v in json.loads(batch.schema.metadata[b"edgecollect.resource"]).items()}


def column(batch: pa.RecordBatch, name: str) -> list[Any]:
    col = batch.column(batch.schema.get_field_index(name))
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    return list(col.to_pylist())


def expected_metrics(batch: pa.RecordBatch) -> Metrics:
    cols = {n: column(batch, n) for n in batch.schema.names}
    out: Metrics = {}
    for i in range(batch.num_rows):
        field, temporality, monotonic = KIND_OTLP[cols["kind"][i]]
        key = (cols["name"][i], cols["unit"][i], field, temporality, monotonic)
        iv, dv = cols["int_value"][i], cols["double_value"][i]
        value = ("int", iv) if iv is not None else ("double", dv)
        point = (cols["start_time_unix_nano"][i] or 0, cols["time_unix_nano"][i], value,
                 expected_attrs(cols["attributes"][i], cols["flags"][i]))
        out.setdefault(key, []).append(point)
    return out


def expected_logs(batch: pa.RecordBatch) -> list[tuple[Any, ...]]:
    cols = {n: column(batch, n) for n in batch.schema.names}
    names = {1: "str", 2: "int", 3: "double", 4: "bool", 7: "bytes"}
    out = []
    for i in range(batch.num_rows):
        t = cols["body_type"][i]
        body = (names[t], cols[f"body_{names[t]}"][i])
        out.append((cols["time_unix_nano"][i], cols["severity_number"][i], cols["severity_text"][i], body,
                    expected_attrs(cols["attributes"][i], cols["flags"][i])))
    return out


def assert_metrics_exact(data: dict[str, Any], batch: pa.RecordBatch) -> None:
    resource, metrics = metrics_json(data)
    assert resource == expected_resource(batch)
    want = expected_metrics(batch)
    assert sorted(metrics) == sorted(want)
    for key, points in want.items():
        assert metrics[key] == points, f"metric {key} differs"


# -- batches ---------------------------------------------------------------------------------------


def section7_batch() -> pa.RecordBatch:
    reg = SeriesRegistry()
    s0 = reg.intern(Series("cpu.utilization", "1", "gauge", attrs(cpu="0")))
    s1 = reg.intern(Series("cpu.utilization", "1", "gauge", attrs(cpu="1")))
    rows = Rows([s0, s1], [T, T], [0.42, 0.17], [0, 0], [0, 0])
    return build_metrics(rows, reg, Resource(attrs({"host.name": "pi4"})), "boot")


ATTR_VALUES: list[AttrValue] = ["", "ünï©ødé ✓", "x" * 300, 0, -1, 2**62, -(2**63), 1.5, -0.25, 1e-300,
                             6.02e23, True, False]
UNITS = ["1", "By", "Cel", "%", "", "By/s"]


def mixed_batch(n_series: int, points: int, seed: int, t0: int = T, names: int = 40) -> pa.RecordBatch:
    """int and double gauges and sums of all four kinds, attributes of every scalar type, clock flags."""
    rng = random.Random(seed)
    reg = SeriesRegistry()
    kinds = KINDS
    sids: list[int] = []
    times: list[int] = []
    floats: list[float] = []
    ints: list[int] = []
    flags: list[int] = []
    for s in range(n_series):
        kind = kinds[s % 4]
        a: dict[str, AttrValue] = {
            "series": s,
            "host.cpu": str(s % 4),
            "v": ATTR_VALUES[s % len(ATTR_VALUES)],
            f"k{s % 5}": ATTR_VALUES[(s * 7) % len(ATTR_VALUES)],
        }
        series = Series(f"edge.metric.{s % names}", UNITS[s % len(UNITS)], kind, attrs(a))
        sid = reg.intern(series, start_time_ns=t0 - 10**9 * (s + 1) if kind != "gauge" else 0)
        is_int = s % 3 == 0
        for k in range(points):
            sids.append(sid)
            times.append(t0 + k * 1_000_000_000 + s)
            floats.append(0.0 if is_int else rng.uniform(-1e6, 1e6))
            ints.append(rng.randint(-(2**40), 2**40) if is_int else 0)
            flags.append((FLAG_INT if is_int else 0) | (rng.randint(0, 3) if rng.random() < 0.2 else 0))
    resource = Resource(attrs({"host.name": "gw-1", "service.name": "edgecollect", "host.cpus": 4,
                               "gw.lat": 48.1, "gw.ntp": True}))
    return build_metrics(Rows(sids, times, floats, ints, flags), reg, resource, "boot")


def logs_batch() -> pa.RecordBatch:
    names = {1: "TRACE", 5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR", 21: "FATAL"}
    severities = [(names.get(n - (n - 1) % 4, "?") + ("" if (n - 1) % 4 == 0 else str((n - 1) % 4 + 1)), n)
                  for n in range(1, 25)] + [("", 0)] + list(SEVERITY_NUMBERS.items())
    bodies: list[str | int | float | bool | bytes] = [
        "plain line", "", "ünï©ødé ✓\nsecond line", "x" * 5000, 0, -7, 2**63 - 1, -(2**63), 3.25, -0.5, 1e300,
        True, False, b"", b"\x00\xff\x10 binary", bytes(range(256)),
    ]
    records = []
    for i in range(400):
        text, number = severities[i % len(severities)]
        a: dict[str, AttrValue] = {"src": f"port{i % 4}", "line": i, "ok": i % 2 == 0, "ratio": i / 8}
        if i % 3 == 0:
            a = {}
        records.append(LogRecord(T + i, bodies[i % len(bodies)], text, number, attrs(a)))
    return build_logs(records, Resource(attrs({"host.name": "gw-1"})), "boot", flags=2)


# -- tests ---------------------------------------------------------------------------------------


def test_section7_worked_example_decodes_exactly(make_sink: MakeSink) -> None:
    sink = make_sink().start()
    batch = section7_batch()
    bar = OtapStreamEncoder("metrics", ipc_compression="none").encode(batch)
    assert [(p.schema_id, p.type) for p in bar.arrow_payloads] == [
        ("0", pb.UNIVARIATE_METRICS),
        ("1", pb.RESOURCE_ATTRS),
        ("2", pb.NUMBER_DATA_POINTS),
        ("3", pb.NUMBER_DP_ATTRS),
    ]
    [data] = decoded(sink, "metrics", send(sink, "metrics", [bar]), 1)
    resource, metrics = metrics_json(data)
    assert resource == {"host.name": ("str", "pi4")}
    assert metrics == {
        ("cpu.utilization", "1", "gauge", None, False): [
            (0, T, ("double", 0.42), {"cpu": ("str", "0")}),
            (0, T, ("double", 0.17), {"cpu": ("str", "1")}),
        ]
    }
    assert_metrics_exact(data, batch)


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_ten_thousand_mixed_points_decode_exactly(make_sink: MakeSink, compression: str) -> None:
    sink = make_sink().start()
    batch = mixed_batch(200, 50, seed=1)
    assert batch.num_rows == 10_000
    enc = OtapStreamEncoder("metrics", ipc_compression=compression)  # type: ignore[arg-type]
    [data] = decoded(sink, "metrics", send(sink, "metrics", [enc.encode(batch)]), 1)
    assert_metrics_exact(data, batch)


def test_logs_of_every_severity_and_body_type_decode_exactly(make_sink: MakeSink) -> None:
    sink = make_sink().start()
    batch = logs_batch()
    bars = [OtapStreamEncoder("logs").encode(batch)]
    [data] = decoded(sink, "logs", send(sink, "logs", bars), 1)
    resource, records = logs_json(data)
    assert resource == expected_resource(batch)
    want = expected_logs(batch)
    assert len(records) == len(want)
    for got, exp in zip(records, want, strict=True):
        assert got == exp


def growing_batches(count: int) -> Iterator[pa.RecordBatch]:
    """Each batch brings new metric names (past 255: uint16), new attribute keys (past 255) and 150
    new string values (past 65 535 over the run: the dictionary starts over)."""
    for i in range(count):
        reg = SeriesRegistry()
        sids, times, floats, ints, flags = [], [], [], [], []
        for s in range(30):
            a: dict[str, AttrValue] = {
                f"key{i}": f"v{i}-{s}", "stable": s, "slot": f"s{s}", "seq": f"{i}.{s}",
                "big": f"{i}/{s}/{'x' * (s % 3)}", "more": f"m{i}-{s}", "rare": f"r{i}:{s}",
            }
            kind = KINDS[s % 4]
            name = f"grow.{i}.{s % 2}" if s < 4 else f"base.{s}"
            sid = reg.intern(Series(name, "1", kind, attrs(a)), start_time_ns=T if kind != "gauge" else 0)
            for k in range(5):
                sids.append(sid)
                times.append(T + i * 10**10 + k * 10**9)
                floats.append(i + s / 7 + k)
                ints.append(i * 1000 + s * 10 + k)
                flags.append((FLAG_INT if s % 2 else 0) | (1 if (i + k) % 50 == 0 else 0))
        resource = Resource(attrs({"host.name": "gw"}))
        yield build_metrics(Rows(sids, times, floats, ints, flags), reg, resource, "b")


def test_five_hundred_batches_with_growing_dictionaries_decode_exactly(make_sink: MakeSink) -> None:
    sink = make_sink().start()
    batches = list(growing_batches(500))
    enc = OtapStreamEncoder("metrics")
    bars = [enc.encode(b) for b in batches]
    ids_by_type: dict[int, set[str]] = {}
    for bar in bars:
        for p in bar.arrow_payloads:
            ids_by_type.setdefault(p.type, set()).add(p.schema_id)
    # The name and key dictionaries widened to uint16 on the way: new IPC streams, new schema ids.
    assert len(ids_by_type[pb.UNIVARIATE_METRICS]) > 1 and len(ids_by_type[pb.NUMBER_DP_ATTRS]) > 1
    datas = decoded(sink, "metrics", send(sink, "metrics", bars), len(bars))
    for data, batch in zip(datas, batches, strict=True):
        assert_metrics_exact(data, batch)


def test_recovery_and_self_contained_mode_on_one_stream(make_sink: MakeSink) -> None:
    sink = make_sink().start()
    enc = OtapStreamEncoder("metrics")
    batches = [mixed_batch(20, 3, seed=i, t0=T + i * 10**10) for i in range(6)]
    bars = [enc.encode(batches[0]), enc.encode(batches[1])]
    broken = batches[2].replace_schema_metadata({**batches[2].schema.metadata, b"edgecollect.resource": b"{"})
    with pytest.raises(OtapEncodeError):
        enc.encode(broken)
    bars.append(enc.encode(batches[2]))  # every table restarted under new schema ids
    enc.reset_to_self_contained()
    bars += [enc.encode(b) for b in batches[3:]]
    datas = decoded(sink, "metrics", send(sink, "metrics", bars), len(bars))
    for data, batch in zip(datas, batches, strict=True):
        assert_metrics_exact(data, batch)


def test_logs_stream_of_many_batches_then_self_contained(make_sink: MakeSink) -> None:
    sink = make_sink().start()
    enc = OtapStreamEncoder("logs")
    batches = []
    for i in range(30):
        recs = [
            LogRecord(T + i * 1000 + j, f"line {i}.{j}", "WARN", 13, attrs({"src": f"dev{j % 5}", "b": i}))
            for j in range(20)
        ]
        batches.append(build_logs(recs, Resource(attrs({"host.name": "gw"})), "b", flags=i % 4))
    bars = [enc.encode(b) for b in batches[:15]]
    # Logs decode errors are silent in the Go consumer (otap-wire.md §6.5): strategy B must be exact too.
    enc.reset_to_self_contained()
    bars += [enc.encode(b) for b in batches[15:]]
    datas = decoded(sink, "logs", send(sink, "logs", bars), len(batches))
    for data, batch in zip(datas, batches, strict=True):
        assert logs_json(data) == (expected_resource(batch), expected_logs(batch))


def one_series_batch(series: Series, values: list[float | int], t0: int, resource: Resource,
                     flags: int = 0, start: int = 0) -> pa.RecordBatch:
    reg = SeriesRegistry()
    sid = reg.intern(series, start_time_ns=start)
    ints = [v if isinstance(v, int) else 0 for v in values]
    floats = [float(v) if isinstance(v, float) else 0.0 for v in values]
    fl = [(FLAG_INT if isinstance(v, int) else 0) | flags for v in values]
    rows = Rows([sid] * len(values), [t0 + i for i in range(len(values))], floats, ints, fl)
    return build_metrics(rows, reg, resource, "b")


def test_columns_and_tables_that_come_and_go_on_one_stream(make_sink: MakeSink) -> None:
    """Optional columns join the schema when first needed (new schema_id), tables are left out when
    empty, and special doubles survive."""
    sink = make_sink().start()
    res = Resource(attrs({"host.name": "gw"}))
    batches = [
        one_series_batch(Series("g", "1", "gauge", attrs(a="x")), [0.5, math.inf, -math.inf, -0.0], T, res),
        one_series_batch(Series("c", "By", "cumulative", attrs(n=1)), [1, 2, 3], T + 10, res, start=T - 5),
        one_series_batch(Series("u", "", "updown"), [-(2**63), 2**63 - 1], T + 20, Resource()),
        one_series_batch(Series("g", "1", "gauge", attrs(b=True, d=2.5)), [1.0], T + 30, res, flags=3),
        one_series_batch(Series("d", "1", "delta"), [7], T + 40, Resource(), flags=0),
    ]
    enc = OtapStreamEncoder("metrics")
    bars = [enc.encode(b) for b in batches]
    types = [[p.type for p in bar.arrow_payloads] for bar in bars]
    assert types[2] == [pb.UNIVARIATE_METRICS, pb.NUMBER_DATA_POINTS]  # no attributes anywhere
    points_ids = [{p.schema_id for p in bar.arrow_payloads if p.type == pb.NUMBER_DATA_POINTS} for bar in bars]
    assert points_ids[0] != points_ids[1]  # int_value and start_time_unix_nano joined the schema
    datas = decoded(sink, "metrics", send(sink, "metrics", bars), len(bars))
    for data, batch in zip(datas, batches, strict=True):
        if not json.loads(batch.schema.metadata[b"edgecollect.resource"]):
            assert "attributes" not in data["resourceMetrics"][0].get("resource", {})
        assert_metrics_exact(data, batch)
    [g] = metrics_json(datas[0])[1].values()
    assert [p[2] for p in g] == [("double", 0.5), ("double", math.inf), ("double", -math.inf), ("double", 0.0)]


def test_batch_built_by_hand_with_other_encodings_decodes_the_same(make_sink: MakeSink) -> None:
    """A metrics/1 batch need not come from build_metrics: plain string columns, dictionaries with
    repeated values and microsecond timestamps encode to the same data."""
    sink = make_sink().start()
    base = mixed_batch(40, 3, seed=7, t0=T)
    # Microsecond timestamps must be exact in µs for the comparison: round the base times down.
    field = base.schema.field(5)
    whole_us = pc.multiply(pc.divide(base.column(5).cast(pa.int64()), 1000), 1000).cast(field.type)
    base = base.set_column(5, field, whole_us)
    # Same units, but every value appears twice in the dictionary and rows use the second copy.
    units = base.column("unit")
    dup_dict = pa.concat_arrays([units.dictionary, units.dictionary])
    shifted = pc.add(units.indices, len(units.dictionary)).cast(units.indices.type)
    plain_names = base.column("name").dictionary_decode()
    variant = base.set_column(0, pa.field("name", pa.string(), nullable=False), plain_names)
    variant = variant.set_column(1, variant.schema.field(1), pa.DictionaryArray.from_arrays(shifted, dup_dict))
    us = pa.timestamp("us", tz="UTC")
    for i in (4, 5):
        variant = variant.set_column(i, pa.field(variant.schema.field(i).name, us), variant.column(i).cast(us))
    variant = variant.replace_schema_metadata(base.schema.metadata)
    [data] = decoded(sink, "metrics", send(sink, "metrics", [OtapStreamEncoder("metrics").encode(variant)]), 1)
    assert_metrics_exact(data, base)
