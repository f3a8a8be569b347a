#!/usr/bin/env python3
"""The edgecollect fleet dashboard for Perses, as code: `python build_dashboard.py > edgecollect-fleet.json`.

Queries are PromQL against a Prometheus that receives the agents' OTLP (Prometheus' OTLP receiver or
an OpenTelemetry Collector's prometheusremotewrite exporter) with the default name translation:
dots become underscores, UCUM units become suffixes (By -> _bytes, s -> _seconds, Cel -> _celsius)
and counters gain _total. The gateway is `host_name`, so the receiver must promote that resource
attribute (Prometheus: `otlp: promote_resource_attributes: [host.name]`). Sensor series carry the
device as `device_id` (the MQTT and serial sources' `device.id`).

tests/packaging/test_perses.py checks that the committed JSON is what this script prints and runs
`percli lint` on it.
"""

from __future__ import annotations

import json
import sys
from typing import Any

GATEWAY = 'host_name=~"$gateway"'
Json = dict[str, Any]


def query(promql: str, legend: str) -> Json:
    plugin = {"kind": "PrometheusTimeSeriesQuery", "spec": {"query": promql, "seriesNameFormat": legend}}
    return {"kind": "TimeSeriesQuery", "spec": {"plugin": plugin}}


def chart(title: str, description: str, unit: str, *queries: Json, stack: bool = False) -> Json:
    spec: Json = {
        "legend": {"position": "bottom", "mode": "table", "values": ["last", "max"]},
        "yAxis": {"format": {"unit": unit}, "min": 0},
        "visual": {
            "display": "line", "lineWidth": 1.25, "areaOpacity": 0.3 if stack else 0, "pointRadius": 2,
        },
    }
    if stack:
        spec["visual"]["stack"] = "all"
    return {
        "kind": "Panel",
        "spec": {
            "display": {"name": title, "description": description},
            "plugin": {"kind": "TimeSeriesChart", "spec": spec},
            "queries": list(queries),
        },
    }


def stat(title: str, description: str, unit: str, promql: str) -> Json:
    return {
        "kind": "Panel",
        "spec": {
            "display": {"name": title, "description": description},
            "plugin": {"kind": "StatChart", "spec": {"calculation": "last-number", "format": {"unit": unit}}},
            "queries": [query(promql, "")],
        },
    }


def rate(metric: str, by: str) -> str:
    """Per-second increase of a counter, summed per gateway and `by` labels."""
    return f"sum by (host_name{by}) (rate({metric}{{{GATEWAY}}}[$__rate_interval]))"


PANELS: dict[str, Json] = {
    "gateways": stat(
        "Gateways reporting", "Agents whose spool gauge arrived in the last 5 minutes.", "decimal",
        f"count(max by (host_name) (last_over_time(edgecollect_spool_bytes{{{GATEWAY}}}[5m])))",
    ),
    "backlog_total": stat(
        "Fleet backlog", "Bytes waiting in all spools: what an upstream outage has piled up.", "bytes",
        f"sum(edgecollect_spool_bytes{{{GATEWAY}}})",
    ),
    "oldest": stat(
        "Oldest spooled batch", "Age of the oldest batch not yet acknowledged upstream, worst gateway.",
        "seconds",
        f"max(edgecollect_spool_oldest_age_seconds{{{GATEWAY}}})",
    ),
    "backlog_bytes": chart(
        "Spool backlog (bytes)", "Spooled batch bytes per gateway; grows while upstream is away.", "bytes",
        query(f"sum by (host_name) (edgecollect_spool_bytes{{{GATEWAY}}})", "{{host_name}}"),
    ),
    "backlog_files": chart(
        "Spool backlog (files)", "Spooled batch files per gateway.", "decimal",
        # unit "1" gauges get a _ratio suffix in Prometheus' translation; accept both spellings.
        query(
            f'sum by (host_name) ({{__name__=~"edgecollect_spool_files(_ratio)?", {GATEWAY}}})',
            "{{host_name}}",
        ),
    ),
    "drops": chart(
        "Drops", "Points dropped by ring overflow (per policy) and by the spool when full or too old.",
        "decimal",
        query(rate("edgecollect_buffer_dropped_total", ", policy"), "{{host_name}} ring {{policy}}"),
        query(rate("edgecollect_spool_points_dropped_total", ", reason"), "{{host_name}} spool {{reason}}"),
        stack=True,
    ),
    "rejects": chart(
        "Rejects", "Readings refused by a source's parser (bad frame, bad value, too many series).",
        "decimal",
        query(
            f'sum by (host_name, source, reason) (rate({{__name__=~"edgecollect_.+_points_rejected_total", '
            f"{GATEWAY}}}[$__rate_interval]))",
            "{{host_name}} {{source}} {{reason}}",
        ),
        stack=True,
    ),
    "upstream": chart(
        "Upstream delivery", "Points acknowledged upstream per second, and retries by reason.", "decimal",
        query(rate("edgecollect_upstream_points_delivered_total", ""), "{{host_name}} delivered"),
        query(rate("edgecollect_upstream_retries_total", ", reason"), "{{host_name}} retry {{reason}}"),
    ),
    "rss": chart(
        "Agent memory (RSS)", "Resident memory of the agent (host source: process.memory.usage).",
        "bytes",
        query(f"max by (host_name) (process_memory_usage_bytes{{{GATEWAY}}})", "{{host_name}}"),
    ),
    "clock": chart(
        "Clock repairs", "Batches whose pre-sync timestamps were moved when NTP stepped the clock (no RTC).",
        "decimal",
        query(rate("edgecollect_clock_repairs_total", ", where"), "{{host_name}} {{where}}"),
    ),
    "sensor": chart(
        "$metric by device", "The chosen sensor metric for each device (MQTT and serial sources).", "decimal",
        query(
            f'avg by (host_name, device_id) ({{__name__="$metric", device_id=~"$device", {GATEWAY}}})',
            "{{host_name}} {{device_id}}",
        ),
    ),
    "temperature": chart(
        "Temperatures", "Every hw.temperature series of the chosen devices.", "decimal",
        query(
            "avg by (host_name, device_id, hw_id) "
            f'(hw_temperature_celsius{{device_id=~"$device", {GATEWAY}}})',
            "{{host_name}} {{device_id}} {{hw_id}}",
        ),
    ),
}


def item(x: int, y: int, width: int, height: int, panel: str) -> Json:
    assert panel in PANELS, panel
    return {"x": x, "y": y, "width": width, "height": height, "content": {"$ref": f"#/spec/panels/{panel}"}}


def row(title: str, items: list[Json]) -> Json:
    return {"kind": "Grid", "spec": {"display": {"title": title, "collapse": {"open": True}}, "items": items}}


def label_values(name: str, title: str, label: str, matcher: str) -> Json:
    return {
        "kind": "ListVariable",
        "spec": {
            "name": name,
            "display": {"name": title, "hidden": False},
            "allowAllValue": True,
            "allowMultiple": True,
            "defaultValue": "$__all",
            "plugin": {
                "kind": "PrometheusLabelValuesVariable", "spec": {"labelName": label, "matchers": [matcher]},
            },
        },
    }


def dashboard() -> Json:
    metric = {
        "kind": "ListVariable",
        "spec": {
            "name": "metric",
            "display": {"name": "Sensor metric", "hidden": False},
            "allowAllValue": False,
            "allowMultiple": False,
            "plugin": {
                "kind": "PrometheusLabelValuesVariable",
                "spec": {
                    "labelName": "__name__", "matchers": ['{device_id=~"$device", host_name=~"$gateway"}'],
                },
            },
        },
    }
    return {
        "kind": "Dashboard",
        "metadata": {"name": "edgecollect-fleet", "project": "edgecollect"},
        "spec": {
            "display": {
                "name": "edgecollect fleet",
                "description": "Agent health (backlog, drops, rejects, memory) and sensor readings.",
            },
            "duration": "6h",
            "refreshInterval": "1m",
            "variables": [
                label_values("gateway", "Gateway", "host_name", "edgecollect_spool_bytes"),
                label_values("device", "Device", "device_id", '{device_id!="", host_name=~"$gateway"}'),
                metric,
            ],
            "panels": PANELS,
            "layouts": [
                row("Fleet", [
                    item(0, 0, 8, 4, "gateways"), item(8, 0, 8, 4, "backlog_total"),
                    item(16, 0, 8, 4, "oldest"),
                ]),
                row("Agent health", [
                    item(0, 0, 12, 8, "backlog_bytes"), item(12, 0, 12, 8, "backlog_files"),
                    item(0, 8, 12, 8, "drops"), item(12, 8, 12, 8, "rejects"),
                    item(0, 16, 12, 8, "upstream"), item(12, 16, 12, 8, "rss"),
                    item(0, 24, 24, 6, "clock"),
                ]),
                row("Sensors by device", [item(0, 0, 24, 9, "sensor"), item(0, 9, 24, 9, "temperature")]),
            ],
        },
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
