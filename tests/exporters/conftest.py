"""Fixtures for the upstream tests: a spool full of numbered points, the Go sink, a running forwarder.

Every metrics point carries a unique integer value (`seq`), so a test can say exactly which points
arrived, which are missing and which came twice, instead of comparing counts.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgecollect.batch import Rows, build_logs, build_metrics, to_ipc
from edgecollect.exporters.forwarder import Forwarder
from edgecollect.exporters.upstream import UpstreamConfig
from edgecollect.model import KINDS, LogRecord, Resource, Series, SeriesRegistry, attrs
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.support.sink import go_sink_binary, make_sink

__all__ = ["Filler", "filler", "go_sink_binary", "make_sink"]  # the fixtures of this folder

T0 = 1_700_000_000_000_000_000
RESOURCE = Resource(attrs({"host.name": "gw-test", "service.name": "edgecollect"}))


@dataclass
class Spooled:
    spool: Spool
    telemetry: Telemetry
    values: list[int]  # every int value spooled, in order
    batch_values: dict[int, list[int]]  # spool id -> its values


class Filler:
    """Writes metrics batches of numbered points (and logs) into a real spool."""

    def __init__(self, directory: Path) -> None:
        self.telemetry = Telemetry()
        self.spool = Spool(directory, self.telemetry)
        self.spool.open()
        self.registry = SeriesRegistry()
        self.next_value = 0
        self.values: list[int] = []
        self.batch_values: dict[int, list[int]] = {}
        self.log_bodies: list[str] = []

    def metrics(self, points: int, extra_attrs: dict[str, str] | None = None) -> int:
        kinds = KINDS
        sids, times, floats, ints, flags = [], [], [], [], []
        values = []
        for i in range(points):
            v = self.next_value
            self.next_value += 1
            labels = attrs({"dev": f"d{v % 7}", **(extra_attrs or {})})
            series = Series(f"test.m{v % 4}", "1", kinds[v % 4], labels)
            sids.append(self.registry.intern(series, start_time_ns=T0 if series.kind != "gauge" else 0))
            times.append(T0 + v * 1_000_000)
            floats.append(0.0)
            ints.append(v)
            flags.append(0x80 | (v % 4 if i % 5 == 0 else 0))  # FLAG_INT plus some clock flags
            values.append(v)
        batch = build_metrics(Rows(sids, times, floats, ints, flags), self.registry, RESOURCE, "boot-1")
        spool_id = self.spool.append("metrics", to_ipc(batch), points)
        assert spool_id is not None
        self.values += values
        self.batch_values[spool_id] = values
        return spool_id

    def logs(self, records: int) -> int:
        recs = []
        for _ in range(records):
            body = f"log-{len(self.log_bodies)}"
            self.log_bodies.append(body)
            recs.append(LogRecord(T0 + len(self.log_bodies), body, "WARN", 13, attrs({"source": "test"})))
        spool_id = self.spool.append("logs", to_ipc(build_logs(recs, RESOURCE, "boot-1")), records)
        assert spool_id is not None
        return spool_id


@pytest.fixture
def filler(tmp_path: Path) -> Filler:
    return Filler(tmp_path / "spool")


def config(endpoint: str, **overrides: Any) -> UpstreamConfig:
    """A test config: plaintext unless TLS is given, fast backoff."""
    from edgecollect.exporters.upstream import TlsConfig

    base: dict[str, Any] = {"tls": TlsConfig(insecure=True), "retry_initial": 0.05, "retry_max": 0.5}
    base.update(overrides)
    return UpstreamConfig(endpoint=endpoint, **base)


@contextmanager
def forwarding(cfg: UpstreamConfig, filler: Filler, **kwargs: Any) -> Iterator[Forwarder]:
    stop = threading.Event()
    # One spooled batch per wire batch unless a test asks otherwise: most tests here count wire
    # batches (windows, streams, retries); coalesced replay has its own tests.
    kwargs.setdefault("max_points", 1)
    fwd = Forwarder(cfg, filler.spool, filler.telemetry, stop, **kwargs)
    thread = threading.Thread(target=fwd.run, name="forwarder", daemon=True)
    thread.start()
    try:
        yield fwd
    finally:
        stop.set()
        fwd.notify()
        thread.join(15)
        assert not thread.is_alive(), "forwarder did not stop"


def metric_values(records: list[dict[str, Any]]) -> collections.Counter[int]:
    """Every int point value in the sink's decoded records (OTLP JSON), with multiplicity."""
    seen: collections.Counter[int] = collections.Counter()
    for rec in records:
        data = rec["data"] if isinstance(rec["data"], dict) else json.loads(rec["data"])
        for rm in data.get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    body = m.get("gauge") or m.get("sum") or {}
                    for dp in body.get("dataPoints", []):
                        seen[int(dp["asInt"])] += 1
    return seen


def log_bodies(records: list[dict[str, Any]]) -> collections.Counter[str]:
    seen: collections.Counter[str] = collections.Counter()
    for rec in records:
        data = rec["data"] if isinstance(rec["data"], dict) else json.loads(rec["data"])
        for rl in data.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for lr in sl.get("logRecords", []):
                    seen[lr["body"]["stringValue"]] += 1
    return seen


def assert_all_arrived(expected: list[int], seen: collections.Counter[int], label: str) -> int:
    """None missing, nothing unexpected; returns (and prints) the number of duplicates."""
    missing = sorted(set(expected) - set(seen))
    unexpected = sorted(set(seen) - set(expected))
    duplicates = sum(c - 1 for c in seen.values() if c > 1)
    print(f"{label}: {len(expected)} points spooled, {len(set(seen))} distinct arrived, "
          f"{duplicates} duplicates, {len(missing)} missing")
    assert not missing, f"{len(missing)} points missing, first {missing[:10]}"
    assert not unexpected, f"unexpected values {unexpected[:10]}"
    return duplicates
