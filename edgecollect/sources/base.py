"""What every source gets and must provide.

A source owns one device (a broker session, a serial port, the host) on its own thread. It turns
raw input into `Point`s and `LogRecord`s through pure parsers that return outcomes, counts every
outcome, and hands the results to its ring through `SourceContext.emit`. It never lets a parser
exception escape, never blocks another source, and returns from `run()` once `ctx.stop` is set.

`SourceContext` is a source's only door into the pipeline: points and logs (`emit`, `emit_log`,
`note_token`), durability (`on_durable`), early cuts (`request_flush`), counters, a capped jittered
`backoff`, a counting rate-limited `event` log, and the stop event (`wait`). It holds the ring
only as `RingPort`, the few calls it makes on it, so this module needs nothing of the buffer stage
that comes after the sources.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from edgecollect.clock import Clock
from edgecollect.model import (
    REFUSED_BUDGET,
    AttrValue,
    LogRecord,
    Point,
    SeriesBudget,
    SeriesRegistry,
    Value,
    is_finite,
)
from edgecollect.telemetry import Counter, Gauge, Telemetry

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
EVENT_LOG_EVERY_S = 10.0  # at most one log line per event this often; the counter has every one


class RingPort(Protocol):
    """What a context needs of its ring (buffer.Ring, or processors' ProcessingRing), and what the
    status report reads of it."""

    capacity: int

    def extend(self, items: Sequence[tuple[int, int, int | float, int]], token: int = 0) -> None: ...
    def append_log(self, record: LogRecord, token: int = 0) -> None: ...
    def note_token(self, token: int) -> None: ...
    def on_durable(self, listener: Callable[[int], None]) -> None: ...
    def request_flush(self) -> None: ...
    def log_count(self) -> int: ...
    def __len__(self) -> int: ...


class Backoff:
    """Capped exponential backoff with jitter: the n-th `next()` is first_s * 2**(n-1), capped at
    max_s, times a random factor in [low, high] (so devices that failed together retry apart);
    `reset()` once the device works again."""

    def __init__(self, first_s: float, max_s: float, low: float = 0.5, high: float = 1.0,
                 rng: random.Random | None = None) -> None:
        self._first = min(first_s, max_s)
        self._max = max_s
        self._next = self._first
        self._low, self._high = low, high
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self._max)
        return delay * self._rng.uniform(self._low, self._high)

    def reset(self) -> None:
        self._next = self._first


class EventLog:
    """One named event counts and logs at once: every call counts `edgecollect.<kind>.events{event}`;
    a log line is written at most once per `every_s` per event, saying how many went unlogged."""

    def __init__(self, counter: Counter, logger: logging.Logger, every_s: float = EVENT_LOG_EVERY_S) -> None:
        self._counter = counter
        self._log = logger
        self._every = every_s
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}
        self._lock = threading.Lock()  # paho callbacks and the batcher may both report

    def __call__(self, event: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
        """Count `event`; log `message` (%-formatted with `args` only then, so a hot reject path
        pays for no text) unless one was logged within every_s. True if logged."""
        self._counter.inc(event)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(event)
            if last is not None and now - last < self._every:
                self._quiet[event] = self._quiet.get(event, 0) + 1
                return False
            self._last[event] = now
            quiet = self._quiet.pop(event, 0)
        if not args:
            message, args = "%s", (message,)  # a message without args is text, % and all
        if quiet:
            message += f" (and {quiet} more {event} not logged)"
        self._log.log(level, message, *args)
        return True


@dataclass
class SourceContext:
    name: str  # instance name: "<kind>.<name>", e.g. "mqtt.barn", "serial.ttyUSB0"; "host", "self"
    kind: str  # source kind: "host", "mqtt", "serial", "self"
    ring: RingPort  # runtime's; sources use the methods below, never the ring itself
    stop: threading.Event
    series: SeriesRegistry
    telemetry: Telemetry
    clock: Clock
    budget: SeriesBudget | None = None  # this source's share of the series registry
    event: EventLog = field(init=False)  # ctx.event("connect_failed", "mqtt x: refused")

    def __post_init__(self) -> None:
        self._rejected_points = self.counter("points_rejected", "reason")
        self._accepted_points = self.counter("points_accepted")
        self._logs = self.counter("logs_accepted")
        self._flush_requests: Counter | None = None  # made on first use: most sources never ask
        self.event = EventLog(self.counter("events", "event"), logging.getLogger(f"edgecollect.{self.kind}"))

    def counter(self, noun: str, label_key: str | None = None, *, unit: str = "1",
                attributes: Mapping[str, AttrValue] | None = None) -> Counter:
        """A counter `edgecollect.<kind>.<noun>` with this source's name (and any fixed
        `attributes`, e.g. a Modbus unit) as attributes."""
        base: dict[str, AttrValue] = {"source": self.name, **(attributes or {})}
        return self.telemetry.counter(self.kind, noun, label_key, unit=unit, base=base)

    def gauge(self, noun: str, read: Callable[[], Value], *, unit: str = "1",
              attributes: Mapping[str, AttrValue] | None = None) -> Gauge:
        """A gauge `edgecollect.<kind>.<noun>`, read when the agent samples its own metrics."""
        base: dict[str, AttrValue] = {"source": self.name, **(attributes or {})}
        return self.telemetry.gauge(self.kind, noun, read, unit=unit, base=base)

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

    def emit_rows(self, rows: Sequence[tuple[int, int, int | float, int]], token: int = 0) -> None:
        """Buffer ready ring rows (series id, time ns, value, flags) atomically under `token`.
        For a source that already holds the ids `emit` gave its series (the MQTT hot path): it
        skips the registry and the series budget, which admitted those series before, so it is
        the source's job to count what it buffers."""
        self.ring.extend(rows, token)

    def note_token(self, token: int) -> None:
        """The message under `token` buffered nothing (all refused): acks later cover it in order."""
        if token:
            self.ring.note_token(token)

    def on_durable(self, listener: Callable[[int], None]) -> None:
        """`listener(token)` is called (on the batcher's thread) once everything this source emitted
        up to `token` is durable or was dropped by a counted policy."""
        self.ring.on_durable(listener)

    def request_flush(self, reason: str) -> None:
        """Ask for an early cut of this source's ring (it holds unacked messages); counted as
        `edgecollect.<kind>.flush_requests{reason}`."""
        if self._flush_requests is None:
            self._flush_requests = self.counter("flush_requests", "reason")
        self._flush_requests.inc(reason)
        self.ring.request_flush()

    def backoff(self, first_s: float, max_s: float, low: float = 0.5, high: float = 1.0) -> Backoff:
        """A fresh capped, jittered backoff for one device of this source (see Backoff)."""
        return Backoff(first_s, max_s, low, high)

    def emit_log(self, record: LogRecord, token: int = 0) -> None:
        clock_flags = self.clock.flags()
        if clock_flags and not record.flags:
            record = dataclasses.replace(record, flags=clock_flags)
        self.ring.append_log(record, token)
        self._logs.inc()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True when the agent is stopping (so loops never busy-wait)."""
        return self.stop.wait(seconds)
