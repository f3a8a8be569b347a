"""Spooled batch → OTLP Export request: the mapping both OTLP exporters send.

It mirrors the OTAP encoder exactly so a backend sees the same data whichever way it came: kind
gauge → Gauge; cumulative → Sum cumulative monotonic; delta → Sum delta monotonic; updown → Sum
cumulative non-monotonic; each flag bit → its boolean attribute (format.FLAG_ATTRIBUTES: bit 0
`edgecollect.clock.unsynced`, bit 1 `edgecollect.time.repaired`); scope "edgecollect" at our
version; resource from the batch's resource metadata.
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
from edgecollect.format import (
    BODY_COLUMNS,
    COL_ATTRIBUTES,
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
    FORMAT_OF,
)
from edgecollect.format.reader import view

log = logging.getLogger(__name__)

SCOPE_NAME = "edgecollect"
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


def metrics_request(batch: pa.RecordBatch) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """The OTLP request for one `metrics/1` batch (batch.py); one Metric per (name, unit, kind)."""
    spooled = view(batch)
    req = metrics_service_pb2.ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(_key_values(spooled.resource()))
    sm = rm.scope_metrics.add()
    sm.scope.name, sm.scope.version = SCOPE_NAME, __version__
    names, units, kinds = spooled.values(COL_NAME), spooled.values(COL_UNIT), spooled.values(COL_KIND)
    attr_json = spooled.values(COL_ATTRIBUTES)
    starts, times = spooled.nanos(COL_START_TIME), spooled.nanos(COL_TIME)
    doubles, ints = spooled.values(COL_DOUBLE), spooled.values(COL_INT)
    flags = spooled.values(COL_FLAGS)
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
        akey = (attr_json[i], flags[i] & FLAG_BITS)
        kvs = attr_cache.get(akey)
        if kvs is None:
            kvs = attr_cache[akey] = _key_values(json.loads(attr_json[i]), akey[1])
        dp.attributes.extend(kvs)
    return req


def logs_request(batch: pa.RecordBatch) -> logs_service_pb2.ExportLogsServiceRequest:
    """The OTLP request for one `logs/1` batch (batch.py)."""
    spooled = view(batch)
    req = logs_service_pb2.ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend(_key_values(spooled.resource()))
    sl = rl.scope_logs.add()
    sl.scope.name, sl.scope.version = SCOPE_NAME, __version__
    times = spooled.nanos(COL_TIME)
    sev_num, sev_text = spooled.values(COL_SEVERITY_NUMBER), spooled.values(COL_SEVERITY_TEXT)
    body_type = spooled.values(COL_BODY_TYPE)
    bodies = {code: spooled.values(col) for code, col in BODY_COLUMNS.items()}
    attr_json, flags = spooled.values(COL_ATTRIBUTES), spooled.values(COL_FLAGS)
    for i in range(batch.num_rows):
        rec = sl.log_records.add(time_unix_nano=times[i] or 0, severity_number=sev_num[i],
                                 severity_text=sev_text[i])
        column = bodies.get(body_type[i])
        if column is not None and column[i] is not None:
            _set_value(rec.body, column[i])
        rec.attributes.extend(_key_values(json.loads(attr_json[i]), flags[i] & FLAG_BITS))
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
        want = FORMAT_OF.get(item.signal, item.signal)
        return Delivery(item.spool_id, "reject", "unmappable", f"not a {want} batch: {exc!r}", via)
