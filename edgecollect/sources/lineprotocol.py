"""InfluxDB line protocol, parsed once for every source that reads it (MQTT payloads, serial lines).

    <measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] [<timestamp>]

Pure syntax: it returns measurement, tags, typed fields and the raw timestamp, and leaves naming,
units and time precision to the caller. Field values: floats (no nan/inf: line protocol has
none), `12i` signed and `12u` unsigned integers (range left to the caller, which knows what it can
store), `t/true/f/false` booleans, and double-quoted strings. Escapes (`\\,` `\\ ` `\\=` `\\"`)
follow the InfluxDB reference. A pure-Python parser, so it runs where no wheel of a C one exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["float", "int", "uint", "bool", "str"]

_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_INTEGER = re.compile(r"[-+]?[0-9]{1,40}[iu]")
_TIMESTAMP = re.compile(r"-?[0-9]{1,19}")
_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})


class LineError(ValueError):
    """`kind` is "syntax" (the line is not line protocol) or "value" (a field or time is not a value)."""

    def __init__(self, kind: Literal["syntax", "value"], text: str) -> None:
        super().__init__(text)
        self.kind: Literal["syntax", "value"] = kind


@dataclass(frozen=True, slots=True)
class Field:
    key: str
    kind: FieldKind
    value: float | int | bool | str


@dataclass(frozen=True, slots=True)
class Line:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[Field, ...]
    timestamp: int | None  # as sent; its precision is the caller's to know


def _split(text: str, sep: str, quotes: bool, maxsplit: int = -1) -> list[str]:
    """Split on `sep` outside backslash escapes (and, with `quotes`, double quotes)."""
    if "\\" not in text and not (quotes and '"' in text):
        return text.split(sep, maxsplit)
    parts: list[str] = []
    cur: list[str] = []
    i, n, in_quote = 0, len(text), False
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quotes and c == '"':
            in_quote = not in_quote
        elif c == sep and not in_quote and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if in_quote:
        raise LineError("syntax", "unclosed quote")
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _field(item: str) -> Field:
    kv = _split(item, "=", quotes=True, maxsplit=1)
    if len(kv) != 2 or not kv[0] or not kv[1]:
        raise LineError("syntax", item)
    key, raw = _unescape(kv[0]), kv[1]
    if raw[0] == '"':
        if len(raw) < 2 or raw[-1] != '"':
            raise LineError("syntax", item)
        return Field(key, "str", _unescape(raw[1:-1]))
    if raw in _TRUE or raw in _FALSE:
        return Field(key, "bool", raw in _TRUE)
    if raw[-1] in "iu":
        if not _INTEGER.fullmatch(raw):
            raise LineError("value", item)
        return Field(key, "uint" if raw[-1] == "u" else "int", int(raw[:-1]))
    if not _FLOAT.fullmatch(raw):
        raise LineError("value", item)
    value = float(raw)
    if value in (float("inf"), float("-inf")):
        raise LineError("value", item)  # "1e999": finite text, infinite double
    return Field(key, "float", value)


def parse_line(text: str) -> Line:
    """One line (without its newline); raises LineError."""
    text = text.strip()
    if not text or text.startswith("#"):
        raise LineError("syntax", text)
    head_rest = _split(text, " ", quotes=False, maxsplit=1)
    if len(head_rest) != 2:
        raise LineError("syntax", text)
    head, rest = head_rest
    sections = _split(rest.strip(), " ", quotes=True)
    if not 1 <= len(sections) <= 2 or not all(sections):
        raise LineError("syntax", text)
    key_parts = _split(head, ",", quotes=False)
    if not key_parts[0]:
        raise LineError("syntax", text)
    tags: list[tuple[str, str]] = []
    for tag in key_parts[1:]:
        kv = _split(tag, "=", quotes=False, maxsplit=1)
        if len(kv) != 2 or not kv[0] or not kv[1]:
            raise LineError("syntax", text)
        tags.append((_unescape(kv[0]), _unescape(kv[1])))
    timestamp: int | None = None
    if len(sections) == 2:
        if not _TIMESTAMP.fullmatch(sections[1]):
            raise LineError("value", sections[1])
        timestamp = int(sections[1])
    fields = tuple(_field(item) for item in _split(sections[0], ",", quotes=True))
    return Line(_unescape(key_parts[0]), tuple(tags), fields, timestamp)
