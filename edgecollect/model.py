"""The data model: series, points, log records, resources, and series interning.

A *series* is (metric name, unit, kind, attributes). Sources describe what they read as `Point`s
(series + value + optional time); the source context interns each series once into a small
integer id so that rings and batches carry ids, not repeated strings (design.md, "Data model").
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

# Gauges are instantaneous readings; "cumulative" and "delta" are monotonic sums with that
# temporality; "updown" is a cumulative non-monotonic sum (OTel UpDownCounter).
Kind = Literal["gauge", "cumulative", "delta", "updown"]
KINDS: tuple[Kind, ...] = ("gauge", "cumulative", "delta", "updown")

AttrValue = str | int | float | bool
Attributes = tuple[tuple[str, AttrValue], ...]
Value = int | float


def attrs(mapping: Mapping[str, AttrValue] | None = None, **kwargs: AttrValue) -> Attributes:
    """Canonical attribute tuple: sorted by key, so equal sets intern to one series."""
    merged: dict[str, AttrValue] = dict(mapping or {})
    merged.update(kwargs)
    return tuple(sorted(merged.items()))


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    unit: str = "1"
    kind: Kind = "gauge"
    attributes: Attributes = ()


@dataclass(frozen=True, slots=True)
class Point:
    """One reading as a parser produces it; `time_ns` None means "stamp on receipt"."""

    series: Series
    value: Value
    time_ns: int | None = None
    start_time_ns: int | None = None  # cumulative series: when counting began (e.g. boot)


# OTel severity numbers (logs data model): the first number of each range.
SEVERITY_NUMBERS: dict[str, int] = {
    "TRACE": 1, "DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17, "FATAL": 21,
}

LogBody = str | int | float | bool | bytes


@dataclass(frozen=True, slots=True)
class LogRecord:
    time_ns: int
    body: LogBody
    severity_text: str = "INFO"
    severity_number: int = 9
    attributes: Attributes = ()
    flags: int = 0  # clock.py bits: stamped while the clock was unsynchronised; repaired later


@dataclass(frozen=True, slots=True)
class Parsed:
    """What a parser makes of one input unit (a line, a frame, a message). Never raised: returned."""

    points: tuple[Point, ...] = ()
    logs: tuple[LogRecord, ...] = ()
    outcome: str = "ok"


def is_finite(value: Value) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


@dataclass
class _Entry:
    series: Series
    start_time_ns: int


# intern() results that are not ids: which cap refused the new series (the caller counts it).
REFUSED_SHARED = -1  # the agent-wide max_series pool is full
REFUSED_BUDGET = -2  # the caller's own budget (a source's max_series, self-telemetry's) is full


@dataclass
class SeriesBudget:
    """One owner's share of the registry: at most `limit` new series (None: only the shared cap).

    A `reserved` budget (the agent's own telemetry) is kept apart from the shared `max_series`
    pool, so no source's cardinality flood can refuse the counters that report it.
    """

    name: str
    limit: int | None = None
    reserved: bool = False
    used: int = 0
    refused: int = 0


@dataclass
class SeriesRegistry:
    """Interns series to dense ids, bounded by `max_series` so cardinality cannot grow memory.

    Every new series is charged to the caller's `SeriesBudget` (if any) and, unless that budget is
    reserved, to the shared `max_series` pool: one source can be held to its own `max_series`,
    and the agent's own series never compete with the sources'. Memory: one entry per series, at
    most `max_series` plus the reserved budgets' limits.

    Cumulative series remember a start time (the first time they were seen, unless a source knows
    better, e.g. boot time for kernel counters), which OTLP needs on every point. A negative start
    time is relative to each point (an aggregate's window: start = time + start_time_ns).
    """

    max_series: int = 50_000
    _ids: dict[Series, int] = field(default_factory=dict)
    _entries: list[_Entry] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _shared_used: int = 0

    def budget(self, name: str, limit: int | None = None, *, reserved: bool = False) -> SeriesBudget:
        if reserved and limit is None:
            raise ValueError("a reserved series budget needs a limit")
        return SeriesBudget(name, limit, reserved)

    def intern(self, series: Series, start_time_ns: int = 0, budget: SeriesBudget | None = None) -> int:
        """The id of `series`, or REFUSED_SHARED / REFUSED_BUDGET (negative) when a cap is reached."""
        found = self._ids.get(series)
        if found is not None:
            return found
        with self._lock:
            found = self._ids.get(series)
            if found is not None:
                return found
            shared = budget is None or not budget.reserved
            if budget is not None and budget.limit is not None and budget.used >= budget.limit:
                budget.refused += 1
                return REFUSED_BUDGET
            if shared and self._shared_used >= self.max_series:
                if budget is not None:
                    budget.refused += 1
                return REFUSED_SHARED
            new_id = len(self._entries)
            self._entries.append(_Entry(series, start_time_ns))
            self._ids[series] = new_id
            if shared:
                self._shared_used += 1
            if budget is not None:
                budget.used += 1
            return new_id

    def lookup(self, series: Series) -> int | None:
        """The id of an interned `series`, or None; never interns or charges a budget."""
        return self._ids.get(series)

    def series(self, series_id: int) -> Series:
        return self._entries[series_id].series

    def start_time_ns(self, series_id: int) -> int:
        return self._entries[series_id].start_time_ns

    def __len__(self) -> int:
        return len(self._entries)

    def shift_start_times(self, before_ns: int | None, delta_ns: int) -> int:
        """A clock step: start times taken on the old clock move with it. Returns how many moved."""
        moved = 0
        with self._lock:
            for entry in self._entries:
                if entry.start_time_ns > 0 and (before_ns is None or entry.start_time_ns < before_ns):
                    entry.start_time_ns += delta_ns
                    moved += 1
        return moved

    def lookup_many(self, ids: Iterable[int]) -> list[Series]:
        entries = self._entries
        return [entries[i].series for i in ids]


@dataclass(frozen=True, slots=True)
class Resource:
    """Attributes of the gateway itself (host.name, service.name=edgecollect, ...)."""

    attributes: Attributes = ()
