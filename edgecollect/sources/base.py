"""What every source gets and must provide.

A source owns one device (a broker session, a serial port, the host) on its own thread. It turns
raw input into `Point`s and `LogRecord`s through pure parsers that return outcomes, counts every
outcome, and hands the results to its ring through `SourceContext.emit`. It never lets a parser
exception escape, never blocks another source, and returns from `run()` once `ctx.stop` is set.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.model import REFUSED_BUDGET, AttrValue, LogRecord, Point, SeriesBudget, SeriesRegistry, is_finite
from edgecollect.telemetry import Counter, Telemetry

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class SourceContext:
    name: str  # instance name, e.g. "host", "mqtt.0", "serial./dev/ttyUSB0"
    kind: str  # source kind: "host", "mqtt", "serial", "self"
    ring: Ring
    stop: threading.Event
    series: SeriesRegistry
    telemetry: Telemetry
    clock: Clock
    budget: SeriesBudget | None = None  # this source's share of the series registry

    def __post_init__(self) -> None:
        self._rejected_points = self.counter("points_rejected", "reason")
        self._accepted_points = self.counter("points_accepted")
        self._logs = self.counter("logs_accepted")

    def counter(self, noun: str, label_key: str | None = None, *, unit: str = "1") -> Counter:
        """A counter `edgecollect.<kind>.<noun>` with this source's name as an attribute."""
        base: dict[str, AttrValue] = {"source": self.name}
        return self.telemetry.counter(self.kind, noun, label_key, unit=unit, base=base)

    def emit(self, points: Iterable[Point], token: int = 0, flags: int | None = None) -> int:
        """Intern and buffer points atomically under `token`; returns how many were accepted.

        Points without a time are stamped now. Non-finite values and series past the cardinality
        cap are rejected and counted here, so every source gets the same guard.
        """
        now_ns, now_flags = self.clock.stamp()
        if flags is not None:
            now_flags |= flags
        rows: list[tuple[int, int, int | float, int]] = []
        for point in points:
            if not is_finite(point.value):
                self._rejected_points.inc("not_finite")
                continue
            if isinstance(point.value, int) and not INT64_MIN <= point.value <= INT64_MAX:
                self._rejected_points.inc("out_of_range")  # the ring's int column is int64
                continue
            time_ns = now_ns if point.time_ns is None else point.time_ns
            start = 0
            if point.series.kind in ("cumulative", "updown"):
                # A cumulative series never starts after its first point: the device's own start
                # (reset) time when the payload gives one, else the first point's own time.
                start = min(point.start_time_ns or time_ns, time_ns)
            series_id = self.series.intern(point.series, start, self.budget)
            if series_id < 0:
                # "max_series": this source's own budget; "cardinality": the agent-wide pool.
                self._rejected_points.inc("max_series" if series_id == REFUSED_BUDGET else "cardinality")
                continue
            rows.append((series_id, time_ns, point.value, now_flags))
        if rows:
            self.ring.extend(rows, token)
            self._accepted_points.inc(n=len(rows))
        elif token:
            self.ring.note_token(token)
        return len(rows)

    def emit_log(self, record: LogRecord, token: int = 0) -> None:
        clock_flags = self.clock.flags()
        if clock_flags and not record.flags:
            record = dataclasses.replace(record, flags=clock_flags)
        self.ring.append_log(record, token)
        self._logs.inc()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the agent is stopping (so loops never busy-wait)."""
        return self.stop.wait(seconds)
