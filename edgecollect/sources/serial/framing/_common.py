"""Pieces every framing shares: the parser protocol, strict number parsing, series naming.

A parser turns one line (bytes without the trailing newline) into a `Parsed`: points, log records
and one outcome from the closed set `OUTCOMES`. It never raises on input; anything it cannot read
is an outcome, and the source counts it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Protocol

from edgecollect.model import AttrValue, Parsed, Series, Value, attrs

# The closed label set of the per-port `frames` counter (slf1.md, "What the gateway does", step 4).
OUTCOMES: tuple[str, ...] = (
    "ok", "crc", "no_start", "no_crc", "overflow", "version", "header", "field", "value",
)

# A decimal int or float, optionally with an exponent; never nan/inf, never hex (slf1.md "value").
_NUMBER = re.compile(rb"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT = re.compile(rb"[-+]?[0-9]+")

# Keep series objects per (name, attributes) so a steady stream allocates nothing new; bounded so a
# device inventing keys cannot grow memory (the registry caps cardinality again downstream).
SERIES_CACHE_MAX = 4096


class LineParser(Protocol):
    def parse(self, line: bytes, time_ns: int) -> Parsed:
        """Points, logs and an outcome for one line; never raises."""


def parse_number(text: bytes) -> Value | None:
    """int for integer text, float for decimal text, None when it is not a finite decimal number."""
    if _INT.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    return None


_NUMBER_TEXT = re.compile(_NUMBER.pattern.decode())
_INT_TEXT = re.compile(_INT.pattern.decode())


def parse_number_text(text: str) -> Value | None:
    """`parse_number` for text already decoded as ASCII."""
    if _INT_TEXT.fullmatch(text):
        return int(text)
    if _NUMBER_TEXT.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    return None


class SeriesMaker:
    """Builds gauge series `<prefix><metric>` with units from config, caching the result."""

    def __init__(self, prefix: str, units: Mapping[str, str]) -> None:
        self.prefix = prefix
        self.units = dict(units)
        self._cache: dict[tuple[str, tuple[tuple[str, AttrValue], ...], str], Series] = {}

    def unit_for(self, metric: str, declared: Mapping[str, str] | None = None) -> str:
        """Device-declared unit first, then config by full name or bare key, else "1"."""
        if declared is not None:
            found = declared.get(metric)
            if found:
                return found
        return self.units.get(self.prefix + metric) or self.units.get(metric) or "1"

    def series(
        self,
        metric: str,
        extra: tuple[tuple[str, AttrValue], ...] = (),
        declared: Mapping[str, str] | None = None,
    ) -> Series:
        """The gauge series for `metric` with attributes `extra` (any order; sorted on first use)."""
        unit = self.unit_for(metric, declared)
        key = (metric, extra, unit)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= SERIES_CACHE_MAX:
                self._cache.clear()
            found = Series(self.prefix + metric, unit, "gauge", attrs(dict(extra)))
            self._cache[key] = found
        return found


def reject(outcome: str) -> Parsed:
    return Parsed(outcome=outcome)
