"""Spooled batch → OTLP Export request: the mapping both OTLP exporters send.

It mirrors the OTAP encoder exactly so a backend sees the same data whichever way it came: kind
gauge → Gauge; cumulative → Sum cumulative monotonic; delta → Sum delta monotonic; updown → Sum
cumulative non-monotonic; flags bit 0 → attribute `edgecollect.clock.unsynced=true`, bit 1 →
`edgecollect.time.repaired=true`; scope "edgecollect" at our version; resource from the batch's
`edgecollect.resource` schema metadata.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from edgecollect import __version__
from edgecollect.exporters.contracts import Delivery, Outgoing

log = logging.getLogger(__name__)

SCOPE_NAME = "edgecollect"
FLAG_ATTRIBUTES = ((0x01, "edgecollect.clock.unsynced"), (0x02, "edgecollect.time.repaired"))
_TEMPORALITY = {"delta": metrics_pb2.AGGREGATION_TEMPORALITY_DELTA,
                "cumulative": metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
                "updown": metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE}


def _set_value(target: common_pb2.AnyValue, value: object) -> None:
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, bytes):
        target.bytes_value = value
    else:
        target.string_value = value if isinstance(value, str) else json.dumps(value)


def _key_values(attributes: dict[str, Any], flags: int = 0) -> list[common_pb2.KeyValue]:
    out = []
    for key, value in attributes.items():
        kv = common_pb2.KeyValue(key=key)
        _set_value(kv.value, value)
        out.append(kv)
    for bit, key in FLAG_ATTRIBUTES:
        if flags & bit:
            out.append(common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(bool_value=True)))
    return out


def _resource_attributes(batch: pa.RecordBatch) -> dict[str, Any]:
    raw = (batch.schema.metadata or {}).get(b"edgecollect.resource", b"{}")
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _decoded(batch: pa.RecordBatch, name: str) -> list[Any]:
    return batch.column(batch.schema.get_field_index(name)).to_pylist()  # type: ignore[no-any-return]


def _nanos(batch: pa.RecordBatch, name: str) -> list[int | None]:
    return batch.column(batch.schema.get_field_index(name)).cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]


def metrics_request(batch: pa.RecordBatch) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """The OTLP request for one `metrics/1` batch (batch.py); one Metric per (name, unit, kind)."""
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(_key_values(_resource_attributes(batch)))
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = SCOPE_NAME, __version__
    names, units, kinds = _decoded(batch, "name"), _decoded(batch, "unit"), _decoded(batch, "kind")
    attr_json = _decoded(batch, "attributes")
    starts, times = _nanos(batch, "start_time_unix_nano"), _nanos(batch, "time_unix_nano")
    doubles, ints = _decoded(batch, "double_value"), _decoded(batch, "int_value")
    flags = _decoded(batch, "flags")
    metrics: dict[tuple[str, str, str], Any] = {}
    attr_cache: dict[tuple[str, int], list[common_pb2.KeyValue]] = {}
    for i in range(batch.num_rows):
        key = (names[i], units[i], kinds[i])
        points = metrics.get(key)
        if points is None:
            metric = sm.metrics.add(name=names[i], unit=units[i])
            if kinds[i] == "gauge":
                points = metric.gauge.data_points
            else:
                metric.sum.aggregation_temporality = _TEMPORALITY[kinds[i]]
                metric.sum.is_monotonic = kinds[i] != "updown"
                points = metric.sum.data_points
            metrics[key] = points
        dp = points.add(time_unix_nano=times[i] or 0, start_time_unix_nano=starts[i] or 0)
        if ints[i] is not None:
            dp.as_int = ints[i]
        elif doubles[i] is not None:
            dp.as_double = doubles[i]
        akey = (attr_json[i], flags[i] & 0x03)
        kvs = attr_cache.get(akey)
        if kvs is None:
            kvs = attr_cache[akey] = _key_values(json.loads(attr_json[i]), akey[1])
        dp.attributes.extend(kvs)
    return req


def logs_request(batch: pa.RecordBatch) -> logs_service_pb2.ExportLogsServiceRequest:
    """The OTLP request for one `logs/1` batch (batch.py)."""
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(_key_values(_resource_attributes(batch)))
    sl = rl.scope_logs.add()
    sl.scope.name, sl.scope.version = SCOPE_NAME, __version__
    times = _nanos(batch, "time_unix_nano")
    sev_num, sev_text = _decoded(batch, "severity_number"), _decoded(batch, "severity_text")
    body_type = _decoded(batch, "body_type")
    bodies = {code: _decoded(batch, col) for code, col in
              ((1, "body_str"), (2, "body_int"), (3, "body_double"), (4, "body_bool"), (7, "body_bytes"))}
    attr_json, flags = _decoded(batch, "attributes"), _decoded(batch, "flags")
    for i in range(batch.num_rows):
        rec = sl.log_records.add(time_unix_nano=times[i] or 0, severity_number=sev_num[i],
                                 severity_text=sev_text[i])
        column = bodies.get(body_type[i])
        if column is not None and column[i] is not None:
            _set_value(rec.body, column[i])
        rec.attributes.extend(_key_values(json.loads(attr_json[i]), flags[i] & 0x03))
    return req


ExportRequest = metrics_service_pb2.ExportMetricsServiceRequest | logs_service_pb2.ExportLogsServiceRequest


def export_request(item: Outgoing) -> ExportRequest:
    return metrics_request(item.batch) if item.signal == "metrics" else logs_request(item.batch)


def mapped(item: Outgoing, via: str) -> ExportRequest | Delivery:
    """The request, or a reject when the batch does not have the spool schema (it never will)."""
    try:
        return export_request(item)
    except (KeyError, ValueError, TypeError, pa.ArrowException) as exc:
        log.error("upstream: spool batch %d cannot be mapped to OTLP: %r", item.spool_id, exc)
        return Delivery(item.spool_id, "reject", "unmappable", f"not a {item.signal}/1 batch: {exc!r}", via)
