"""From a parsed message to the ring: the key guard, and series ids remembered per Series object.

The general path (`KeyGuard.filter`, then `SourceContext.emit`) hashes each point's Series twice
(the guard's admitted set, the registry's id table): a name, a unit, a kind and a tuple of
attributes, for every reading of every message. The formats hand out the same Series object for
the same key again (their series cache), so a series that was admitted and interned once is found
here by the identity of that object, and its rows go to the ring without either hash.

What the fast path may take: a message all of whose points are remembered and whose values the
general path would accept (finite floats, int64 ints). Anything else — a series not seen before, a
refused one, a value to reject — takes the general path for the whole message, which counts and
interns exactly as before and then teaches this cache the ids it handed out. So the cardinality
guards hold unchanged: a series refused by the key guard, a source's `max_series` or the agent's
`max_series` is never remembered, and is refused and counted on every message, as before.

Bounds: at most `REMEMBERED` entries (the map is cleared when full: a cache, not state), each
holding a reference to its Series, so a recycled object id can never be mistaken for another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgecollect.model import Point, Series
from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Counter

REMEMBERED = 8192  # series ids kept per source (a formats' rule cache holds as many Series)
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1


class KeyGuard:
    """Caps distinct series per `device.id` (and devices tracked), so unknown JSON cannot explode."""

    def __init__(self, per_device: int, max_devices: int, max_total: int = 100_000) -> None:
        self._per_device = per_device
        self._max_devices = max_devices
        self._max_total = max_total  # the guard's own memory bound, whatever the two limits multiply to
        self._admitted: set[Series] = set()
        self._counts: dict[str, int] = {}

    def filter(self, points: Sequence[Point]) -> tuple[list[Point], int]:
        """(points admitted, number rejected)."""
        out: list[Point] = []
        rejected = 0
        admitted = self._admitted
        for point in points:
            series = point.series
            if series in admitted:
                out.append(point)
                continue
            device = ""
            for key, value in series.attributes:
                if key == "device.id":
                    device = str(value)
                    break
            count = self._counts.get(device)
            if count is None:
                if len(self._counts) >= self._max_devices:
                    rejected += 1
                    continue
                count = 0
            if count >= self._per_device or len(admitted) >= self._max_total:
                rejected += 1
                continue
            self._counts[device] = count + 1
            admitted.add(series)
            out.append(point)
        return out, rejected


class PointEmitter:
    """Hands a message's points to the ring under its token; one per source, on its thread."""

    def __init__(self, ctx: SourceContext, guard: KeyGuard, keys_rejected: Counter) -> None:
        self._ctx = ctx
        self._guard = guard
        self._keys_rejected = keys_rejected
        self._accepted = ctx.counter("points_accepted")  # the counter ctx.emit counts into
        self._ids: dict[int, tuple[Series, int]] = {}  # id(Series) -> (that Series, its series id)

    def emit(self, points: Sequence[Point], token: int) -> int:
        """Buffer `points` atomically under `token`; returns how many were accepted."""
        rows = self._known_rows(points)
        if rows is None:
            return self._general(points, token)
        self._ctx.emit_rows(rows, token)
        self._accepted.inc(n=len(rows))
        return len(rows)

    def _known_rows(self, points: Sequence[Point]) -> list[tuple[int, int, int | float, int]] | None:
        """The ring rows when every point is remembered and acceptable as it is, else None."""
        ids = self._ids
        now_ns, flags = self._ctx.clock.stamp()
        rows: list[tuple[int, int, int | float, int]] = []
        for point in points:
            series = point.series
            known = ids.get(id(series))
            if known is None or known[0] is not series:
                return None
            value = point.value
            if type(value) is float:
                if not math.isfinite(value):
                    return None
            elif not isinstance(value, int) or not INT64_MIN <= value <= INT64_MAX:
                return None
            rows.append((known[1], now_ns if point.time_ns is None else point.time_ns, value, flags))
        return rows

    def _general(self, points: Sequence[Point], token: int) -> int:
        admitted, rejected = self._guard.filter(points)
        if rejected:
            self._keys_rejected.inc("keys_per_device", rejected)
        if not admitted:
            if token:
                self._ctx.note_token(token)  # covers a message whose points were all refused
            return 0
        accepted = self._ctx.emit(admitted, token)
        self._remember(admitted)
        return accepted

    def _remember(self, admitted: Sequence[Point]) -> None:
        """Remember the ids the registry gave the admitted series (refused ones have none)."""
        ids = self._ids
        lookup = self._ctx.series.lookup
        for point in admitted:
            series = point.series
            key = id(series)
            known = ids.get(key)
            if known is not None and known[0] is series:
                continue
            series_id = lookup(series)
            if series_id is None:
                continue
            if len(ids) >= REMEMBERED:
                ids.clear()
            ids[key] = (series, series_id)
