"""Odd devices: a configured regular expression with named groups, searched in each line.

`T:(?P<temp>-?[0-9.]+)C H:(?P<hum>[0-9.]+)% id=(?P<attr_sensor>\\w+)` makes the metrics
`<prefix>temp` and `<prefix>hum` with the attribute `sensor`. Groups named `attr_<name>` become
attributes; every other group must hold a decimal number (`value` otherwise); a group that did not
take part in the match is "no reading". A line the pattern does not match is `field`.
"""

from __future__ import annotations

import re

from edgecollect.model import AttrValue, Parsed, Point
from edgecollect.sources.serial.framing._common import SeriesMaker, parse_number, reject


class RegexParser:
    def __init__(self, pattern: str, prefix: str, units: dict[str, str]) -> None:
        self._pattern = re.compile(pattern.encode("utf-8"))
        self._series = SeriesMaker(prefix, units)

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        m = self._pattern.search(line)
        if m is None:
            return reject("field")
        extra: list[tuple[str, AttrValue]] = []
        values: list[tuple[str, int | float]] = []
        for name, raw in m.groupdict().items():
            if raw is None or not raw.strip():
                continue
            if name.startswith("attr_"):
                extra.append((name[5:], raw.decode("utf-8", "backslashreplace")))
                continue
            number = parse_number(raw.strip())
            if number is None:
                return reject("value")
            values.append((name, number))
        key = tuple(extra)
        return Parsed(tuple(Point(self._series.series(name, key), v) for name, v in values))
