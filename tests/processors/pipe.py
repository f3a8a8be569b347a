"""A source context whose ring runs a `[[processors]]` chain, on a clock the test sets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from edgecollect.batch import Rows, build_metrics
from edgecollect.buffer import FLAG_INT, Ring
from edgecollect.clock import Clock
from edgecollect.config import loads
from edgecollect.model import Point, Resource, Series, SeriesRegistry, attrs
from edgecollect.processors import ring_factory
from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Telemetry

S = 1_000_000_000


class SetClock(Clock):
    def __init__(self, now_s: float = 0.0) -> None:
        super().__init__()
        self.now = int(now_s * S)

    def now_ns(self) -> int:
        return self.now

    def stamp(self) -> tuple[int, int]:
        return self.now, 0


@dataclass
class Pipe:
    ctx: SourceContext
    clock: SetClock
    telemetry: Telemetry
    registry: SeriesRegistry
    durable: list[int] = field(default_factory=list)

    @property
    def ring(self) -> Ring:
        return self.ctx.ring

    def emit(self, *points: Point, token: int = 0) -> int:
        return self.ctx.emit(points, token)

    def out(self) -> list[tuple[str, float, int | float]]:
        """Drain: (name, time s, value) per row, in ring order."""
        d = self.ring.drain()
        rows = []
        for sid, t, f, i, fl in zip(d.series_ids, d.times_ns, d.floats, d.ints, d.flags, strict=True):
            rows.append((self.registry.series(sid).name, t / S, i if fl & FLAG_INT else f))
        return rows

    def drain_table(self) -> list[dict[str, object]]:
        d = self.ring.drain()
        rows = Rows(d.series_ids, d.times_ns, d.floats, d.ints, d.flags)
        return build_metrics(rows, self.registry, Resource(), "boot").to_pylist()

    def dropped(self, processor: str) -> dict[str, int]:
        counter = self.telemetry.find("edgecollect.processor.dropped", processor=processor)
        return counter.snapshot() if counter else {}


def pipe(toml: str, source: str = "mqtt.0", now_s: float = 0.0) -> Pipe:
    cfg = loads(toml)
    registry, telemetry, clock = SeriesRegistry(max_series=1000), Telemetry(), SetClock(now_s)
    make = ring_factory(cfg.processors, source, registry, telemetry, clock)
    ring = make(
        source,
        10_000,
        "drop_oldest",
        telemetry.counter("buffer", "dropped", "policy"),
        telemetry.counter("buffer", "logs_dropped", "policy"),
    )
    ctx = SourceContext(source, source.split(".")[0], ring, threading.Event(), registry, telemetry, clock)
    p = Pipe(ctx, clock, telemetry, registry)
    ring.on_durable(p.durable.append)
    return p


def gauge(name: str, value: float, t_s: float, unit: str = "1", **attributes: str | int) -> Point:
    return Point(Series(name, unit, "gauge", attrs(attributes)), value, int(t_s * S))


def counter(name: str, value: int, t_s: float, kind: str = "cumulative") -> Point:
    return Point(Series(name, "1", kind, ()), value, int(t_s * S), start_time_ns=1)  # type: ignore[arg-type]
