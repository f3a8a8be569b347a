"""CSV lines with a configured header: `21.5,40.2,ds0` read with header ["temp", "hum", "@sensor.id"].

Each header name is a metric (`<prefix><name>`, unit from config `units`); a name starting with `@`
makes that column an attribute of every point of the line; an empty name skips the column. A line
with the wrong number of columns is `field`, a non-numeric metric column `value`; empty cells are
"no reading". Fields are split on commas and stripped; quoting is not supported (sensor output
never needs it, and a quote is then simply a bad value).
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Parsed, Point
from edgecollect.sources.serial.framing._common import SeriesMaker, parse_number, reject


class CsvParser:
    def __init__(self, header: tuple[str, ...], prefix: str, units: dict[str, str]) -> None:
        self._header = header
        self._series = SeriesMaker(prefix, units)

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        cells = line.split(b",")
        if len(cells) != len(self._header):
            return reject("field")
        extra: list[tuple[str, AttrValue]] = []
        values: list[tuple[str, int | float]] = []
        for name, raw in zip(self._header, cells, strict=True):
            cell = raw.strip()
            if not name:
                continue
            if name.startswith("@"):
                try:
                    extra.append((name[1:], cell.decode("utf-8")))
                except UnicodeDecodeError:
                    return reject("value")
                continue
            if not cell:
                continue
            number = parse_number(cell)
            if number is None:
                return reject("value")
            values.append((name, number))
        key = tuple(extra)
        return Parsed(tuple(Point(self._series.series(name, key), value) for name, value in values))
