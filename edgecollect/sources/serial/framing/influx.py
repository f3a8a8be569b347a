"""InfluxDB line protocol: `weather,sensor=ds0 temp=21.5,hum=40i 1700000000000000000`.

Each field becomes the metric `<prefix><measurement>.<field>` (unit from config `units`), tags
become attributes. Field values: floats, `12i`/`12u` integers, `t`/`true`/`f`/`false` as 1/0;
string fields are skipped (they are not measurements). An optional timestamp in nanoseconds is kept
as the sample time. Escapes (`\\,` `\\ ` `\\=`) follow the InfluxDB reference. Malformed syntax is
`field`; a bad number or timestamp is `value`.
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Parsed, Point
from edgecollect.sources.lineprotocol import LineError, parse_line
from edgecollect.sources.serial.framing._common import SeriesMaker, reject


class InfluxParser:
    def __init__(self, prefix: str, units: dict[str, str]) -> None:
        self._series = SeriesMaker(prefix, units)

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        try:
            parsed = parse_line(line.decode("utf-8"))
        except UnicodeDecodeError:
            return reject("field")
        except LineError as exc:
            return reject("field" if exc.kind == "syntax" else "value")
        extra: tuple[tuple[str, AttrValue], ...] = parsed.tags
        points: list[Point] = []
        for field in parsed.fields:
            if field.kind == "str":
                continue  # text fields are not measurements
            value = int(field.value) if field.kind == "bool" else field.value
            assert not isinstance(value, str)
            series = self._series.series(f"{parsed.measurement}.{field.key}", extra)
            points.append(Point(series, value, parsed.timestamp))
        return Parsed(tuple(points))
