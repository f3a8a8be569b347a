"""JSON lines: one object per line, `{"temp": 21.5, "hum": 40, "sensor": "ds0"}`.

Numbers become metrics `<prefix><key>`; nested objects are flattened with dots
(`{"bme": {"t": 21}}` -> `bme.t`); booleans become 0/1; top-level strings (up to 64 characters)
become attributes of every point of the line; null and arrays are skipped. Not an object: `field`;
NaN/Infinity: `value`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgecollect.model import AttrValue, Parsed, Point
from edgecollect.sources.serial.framing._common import SeriesMaker, reject

MAX_DEPTH = 4


class _NotFinite(Exception):
    pass


def _reject_constant(name: str) -> float:
    raise _NotFinite(name)


class JsonlParser:
    def __init__(self, prefix: str, units: dict[str, str]) -> None:
        self._series = SeriesMaker(prefix, units)

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        try:
            doc = json.loads(line, parse_constant=_reject_constant)
        except _NotFinite:
            return reject("value")
        except (ValueError, RecursionError):
            return reject("field")
        if not isinstance(doc, dict):
            return reject("field")
        extra: list[tuple[str, AttrValue]] = []
        values: list[tuple[str, int | float]] = []
        for key, value in doc.items():
            if isinstance(value, str):
                if len(value) <= 64:
                    extra.append((key, value))
            else:
                _flatten(key, value, values, 0)
        for _, value in values:
            if isinstance(value, float) and not math.isfinite(value):
                return reject("value")
        key_attrs = tuple(extra)
        return Parsed(tuple(Point(self._series.series(name, key_attrs), v) for name, v in values))


def _flatten(name: str, value: Any, out: list[tuple[str, int | float]], depth: int) -> None:
    if isinstance(value, bool):
        out.append((name, int(value)))
    elif isinstance(value, (int, float)):
        out.append((name, value))
    elif isinstance(value, dict) and depth < MAX_DEPTH:
        for key, inner in value.items():
            _flatten(f"{name}.{key}", inner, out, depth + 1)
