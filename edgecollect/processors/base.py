"""What every processor shares: rows, the environment, selection by metric glob, drop counting.

Processors work on rows as the source context interned them — (series id, time ns, value, clock
flags) — not on `Point`s, so a decision about a series (selected? renamed to which id?) is made once
per input series id and cached: the per-point cost is a dict lookup and the processor's own
arithmetic. Every cache and every piece of state is keyed by series id, and ids are bounded by
`agent.max_series`, so processor memory is bounded by the series cap (design.md, "processors").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import translate

from edgecollect.model import Series, SeriesRegistry
from edgecollect.telemetry import Counter, Telemetry

Row = tuple[int, int, int | float, int]  # series id, time ns, value, clock flags


def glob_matcher(globs: tuple[str, ...]) -> Callable[[str], bool]:
    """One compiled regex for a list of fnmatch globs (case-sensitive, like metric names)."""
    if not globs:
        return lambda _name: False
    if "*" in globs:
        return lambda _name: True
    pattern = re.compile("|".join(f"(?:{translate(g)})" for g in globs))
    return lambda name: pattern.match(name) is not None


@dataclass
class Env:
    """What a processor may use: the series registry (to intern renamed series) and telemetry."""

    registry: SeriesRegistry
    telemetry: Telemetry

    def derive(self, source_id: int, series: Series, start_time_ns: int | None = None) -> int:
        """The id of a series made from `source_id` (renamed, re-attributed); -1 when the cap is hit."""
        start = self.registry.start_time_ns(source_id) if start_time_ns is None else start_time_ns
        return self.registry.intern(series, start)


class Stage:
    """A processor of one kind, built from its config. Subclasses override `process` and may
    override `flush` (time-driven output) and `held_token` (messages whose data they hold)."""

    kind = ""

    def __init__(self, name: str, metrics: tuple[str, ...], env: Env) -> None:
        self.name = name
        self.env = env
        self._matches = glob_matcher(metrics)
        self._selected: dict[int, bool] = {}
        self.dropped: Counter = env.telemetry.counter("processor", "dropped", "reason", base={"processor": name})

    def selected(self, series_id: int) -> bool:
        found = self._selected.get(series_id)
        if found is None:
            found = self._matches(self.env.registry.series(series_id).name)
            self._selected[series_id] = found
        return found

    def process(self, rows: list[Row], token: int) -> list[Row]:
        raise NotImplementedError

    def flush(self, now_ns: int, final: bool) -> list[Row]:
        """Rows due by `now_ns` (timers); with `final`, everything still held (shutdown)."""
        return []

    def held_token(self) -> int:
        """The smallest message token whose data this stage holds unemitted, or 0."""
        return 0

    def state_size(self) -> int:
        """Series with state held (for the memory gauge)."""
        return len(self._selected)

    def describe(self) -> str:
        return self.kind
