"""InfluxDB line protocol: `weather,sensor=ds0 temp=21.5,hum=40i 1700000000000000000`.

Each field becomes the metric `<prefix><measurement>.<field>` (unit from config `units`), tags
become attributes. Field values: floats, `12i`/`12u` integers, `t`/`true`/`f`/`false` as 1/0;
string fields are skipped (they are not measurements). An optional timestamp in nanoseconds is kept
as the sample time. Escapes (`\\,` `\\ ` `\\=`) follow the InfluxDB reference. Malformed syntax is
`field`; a bad number or timestamp is `value`.
"""

from __future__ import annotations

import math
import re

from edgecollect.model import AttrValue, Parsed, Point, Value
from edgecollect.sources.serial.framing._common import SeriesMaker, reject

_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INT = re.compile(r"[-+]?[0-9]+[iu]")
_BOOLS = {"t": 1, "T": 1, "true": 1, "True": 1, "TRUE": 1, "f": 0, "F": 0, "false": 0, "False": 0, "FALSE": 0}


class _Syntax(Exception):
    pass


class _BadValue(Exception):
    pass


def _split(text: str, seps: str) -> list[str]:
    """Split on unescaped separators outside double quotes; escapes are kept for `_unescape`."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in seps and not quoted:
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if quoted:
        raise _Syntax(text)
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _value(raw: str) -> Value | None:
    if raw.startswith('"'):
        return None
    if raw in _BOOLS:
        return _BOOLS[raw]
    if _INT.fullmatch(raw):
        return int(raw[:-1])
    if _FLOAT.fullmatch(raw):
        value = float(raw)
        if math.isfinite(value):
            return value
    raise _BadValue(raw)


class InfluxParser:
    def __init__(self, prefix: str, units: dict[str, str]) -> None:
        self._series = SeriesMaker(prefix, units)

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        try:
            return self._parse(line.decode("utf-8").strip())
        except (_Syntax, UnicodeDecodeError):
            return reject("field")
        except _BadValue:
            return reject("value")

    def _parse(self, text: str) -> Parsed:
        if not text or text.startswith("#"):
            raise _Syntax(text)
        sections = _split(text, " ")
        if len(sections) not in (2, 3) or not all(sections):
            raise _Syntax(text)
        head = _split(sections[0], ",")
        measurement = _unescape(head[0])
        if not measurement:
            raise _Syntax(text)
        tags: list[tuple[str, AttrValue]] = []
        for tag in head[1:]:
            key, sep, tag_value = tag.partition("=")
            if not sep or not key or not tag_value:
                raise _Syntax(text)
            tags.append((_unescape(key), _unescape(tag_value)))
        time_ns: int | None = None
        if len(sections) == 3:
            if not re.fullmatch(r"-?[0-9]{1,19}", sections[2]):
                raise _BadValue(sections[2])
            time_ns = int(sections[2])
        extra = tuple(tags)
        points: list[Point] = []
        for item in _split(sections[1], ","):
            key, sep, raw = item.partition("=")
            if not sep or not key or not raw:
                raise _Syntax(text)
            value = _value(raw)
            if value is not None:
                series = self._series.series(f"{measurement}.{_unescape(key)}", extra)
                points.append(Point(series, value, time_ns))
        return Parsed(tuple(points))
