"""`key=value` lists: `temp=21.5 hum=40 vbat=3.71` (pairs separated by spaces, commas or semicolons).

Each key becomes the metric `<prefix><key>` (unit from config `units`). A token that is not
`key=value` with a key of letters, digits, `_ . - /` is `field`; a non-numeric value is `value`
(the whole line is rejected, as SLF/1 does); an empty value is "no reading".
"""

from __future__ import annotations

import re

from edgecollect.model import Parsed, Point
from edgecollect.sources.serial.framing._common import SeriesMaker, parse_number, reject

_SPLIT = re.compile(rb"[\s,;]+")
_KEY = re.compile(rb"[A-Za-z_][A-Za-z0-9_.\-/]{0,63}")


class KvParser:
    def __init__(self, prefix: str, units: dict[str, str]) -> None:
        self._series = SeriesMaker(prefix, units)

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        tokens = [t for t in _SPLIT.split(line.strip()) if t]
        if not tokens:
            return reject("field")
        points: list[Point] = []
        for token in tokens:
            key, sep, raw = token.partition(b"=")
            if not sep or not _KEY.fullmatch(key):
                return reject("field")
            if not raw:
                continue
            number = parse_number(raw)
            if number is None:
                return reject("value")
            points.append(Point(self._series.series(key.decode("ascii")), number))
        return Parsed(tuple(points))
