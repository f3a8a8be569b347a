"""The agent's own counters and gauges, read back like a source (design.md invariant 6).

Every drop, rejection, retry and quarantine is a `Counter` here. Names are
`edgecollect.<component>.<noun>`; reasons and outcomes are attributes, from closed sets chosen by
the code that counts. The self-telemetry source turns a snapshot into points on each interval, so
these numbers travel through the same ring, batch, spool and upstream as any sensor reading.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edgecollect.model import AttrValue, Point, Series, Value, attrs


class Counter:
    """A monotonic count, optionally split by one label (an outcome or reason)."""

    def __init__(self, name: str, unit: str, label_key: str | None, base: Mapping[str, AttrValue]) -> None:
        self.name = name
        self.unit = unit
        self.label_key = label_key
        self._base = dict(base)
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()
        self.start_time_ns = time.time_ns()

    def inc(self, label: str = "", n: int = 1) -> None:
        with self._lock:
            self._values[label] = self._values.get(label, 0) + n

    def value(self, label: str = "") -> int:
        return self._values.get(label, 0)

    def total(self) -> int:
        with self._lock:
            return sum(self._values.values())

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def points(self) -> list[Point]:
        out = []
        for label, count in self.snapshot().items():
            extra: dict[str, AttrValue] = dict(self._base)
            if self.label_key is not None:
                extra[self.label_key] = label
            out.append(Point(Series(self.name, self.unit, "cumulative", attrs(extra)), count))
        return out


class Gauge:
    """A reading taken at collection time from a callback (spool bytes, ring fill, RSS)."""

    def __init__(self, name: str, unit: str, read: Callable[[], Value], base: Mapping[str, AttrValue]) -> None:
        self.name = name
        self.unit = unit
        self._read = read
        self._base = dict(base)

    def value(self) -> Value:
        return self._read()

    def points(self) -> list[Point]:
        return [Point(Series(self.name, self.unit, "gauge", attrs(self._base)), self._read())]


@dataclass(frozen=True, slots=True)
class _Key:
    name: str
    base: tuple[tuple[str, AttrValue], ...]


class Telemetry:
    """The registry of our own instruments. One per agent; never a module-level global."""

    def __init__(self) -> None:
        self._counters: dict[_Key, Counter] = {}
        self._gauges: dict[_Key, Gauge] = {}
        self._lock = threading.Lock()

    def counter(
        self,
        component: str,
        noun: str,
        label_key: str | None = None,
        *,
        unit: str = "1",
        base: Mapping[str, AttrValue] | None = None,
    ) -> Counter:
        """The counter `edgecollect.<component>.<noun>`; the same key returns the same counter."""
        name = f"edgecollect.{component}.{noun}"
        key = _Key(name, attrs(base))
        with self._lock:
            found = self._counters.get(key)
            if found is None:
                found = Counter(name, unit, label_key, base or {})
                self._counters[key] = found
            return found

    def gauge(
        self,
        component: str,
        noun: str,
        read: Callable[[], Value],
        *,
        unit: str = "1",
        base: Mapping[str, AttrValue] | None = None,
    ) -> Gauge:
        name = f"edgecollect.{component}.{noun}"
        key = _Key(name, attrs(base))
        gauge = Gauge(name, unit, read, base or {})
        with self._lock:
            self._gauges[key] = gauge
        return gauge

    def clear(self) -> None:
        """Forget every instrument: gauges hold callbacks into rings and spools (a reload's old
        pipeline must not stay reachable through them)."""
        with self._lock:
            self._counters.clear()
            self._gauges.clear()

    def counters(self) -> list[Counter]:
        with self._lock:
            return list(self._counters.values())

    def gauges(self) -> list[Gauge]:
        with self._lock:
            return list(self._gauges.values())

    def find(self, name: str, **base: AttrValue) -> Counter | None:
        """The counter with this full name and base attributes (for status views and tests)."""
        with self._lock:
            return self._counters.get(_Key(name, attrs(base)))

    def points(self) -> list[Point]:
        out: list[Point] = []
        for counter in self.counters():
            out.extend(counter.points())
        for gauge in self.gauges():
            try:
                out.extend(gauge.points())
            except Exception:  # noqa: BLE001 - a broken gauge must not stop self-telemetry
                continue
        return out

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counter values keyed by 'name{base attrs}' then label, for status output."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            items = list(self._counters.items())
        for key, counter in items:
            label = ",".join(f"{k}={v}" for k, v in key.base)
            out[f"{key.name}{{{label}}}" if label else key.name] = counter.snapshot()
        return out
