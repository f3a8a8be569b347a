"""Helpers shared by the MQTT tests: a real SourceContext, a stand-in batcher, golden comparison."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecollect.buffer import FLAG_INT, Ring
from edgecollect.clock import Clock
from edgecollect.model import Point, SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Telemetry

DATA = Path(__file__).parent / "data"


def make_context(name: str = "mqtt.0", capacity: int = 100_000) -> SourceContext:
    telemetry = Telemetry()
    ring = Ring(
        name, capacity, "drop_oldest",
        telemetry.counter("buffer", "dropped", "policy"),
        telemetry.counter("buffer", "logs_dropped", "policy"),
        max_log_bytes=64 << 20,
    )
    return SourceContext(
        name=name, kind="mqtt", ring=ring, stop=threading.Event(), series=SeriesRegistry(),
        telemetry=telemetry, clock=Clock(),
    )


class FileSink:
    """What the batcher and spool will do, reduced to its contract: drain the ring, append the
    drained values to a file, fsync, then `ring.mark_durable(max_token)`. Runs on its own thread.

    `on_batch(values)` sees each durable batch (ints and floats as written)."""

    def __init__(self, ctx: SourceContext, path: Path, interval_s: float = 0.02,
                 on_batch: Callable[[list[float]], None] | None = None) -> None:
        self.ctx = ctx
        self.path = path
        self.interval_s = interval_s
        self.on_batch = on_batch
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="file-sink", daemon=True)
        self.batches = 0

    def start(self) -> FileSink:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.flush()

    def _run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.flush()

    def flush(self) -> None:
        drained = self.ctx.ring.drain()
        values: list[float] = []
        for i in range(len(drained)):
            values.append(drained.ints[i] if drained.flags[i] & FLAG_INT else drained.floats[i])
        if values:
            with open(self.path, "a", encoding="ascii") as fh:
                fh.write("".join(f"{v!r}\n" for v in values))
                fh.flush()
                os.fsync(fh.fileno())
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(values)
        if drained.max_token:
            self.ctx.ring.mark_durable(drained.max_token)


def point_dict(point: Point) -> dict[str, Any]:
    return {
        "name": point.series.name,
        "value": point.value,
        "unit": point.series.unit,
        "kind": point.series.kind,
        "attributes": dict(point.series.attributes),
        "time_ns": point.time_ns,
    }


def same_value(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return False  # values are numbers; a bool would be a parser slip
    if isinstance(expected, int):
        return isinstance(actual, int) and actual == expected
    return isinstance(actual, float) and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def same_time(expected: int | None, actual: int | None) -> bool:
    if expected is None or actual is None:
        return expected is actual
    return abs(expected - actual) <= 1000  # float seconds (Shelly ts) round to within a microsecond


def match_points(expected: list[dict[str, Any]], actual: list[Point]) -> list[str]:
    """Differences between expected point dicts and actual points, order-insensitive."""
    problems: list[str] = []
    remaining = [point_dict(p) for p in actual]
    for want in expected:
        want = {"kind": "gauge", "time_ns": None, "attributes": {}, **want}
        for i, got in enumerate(remaining):
            if (
                got["name"] == want["name"]
                and got["unit"] == want["unit"]
                and got["kind"] == want["kind"]
                and got["attributes"] == want["attributes"]
                and same_value(want["value"], got["value"])
                and same_time(want["time_ns"], got["time_ns"])
            ):
                del remaining[i]
                break
        else:
            problems.append(f"missing {want}")
    problems.extend(f"unexpected {got}" for got in remaining)
    return problems
