"""Line numbers for TOML keys, because tomllib reports none.

A small line scanner (not a TOML parser): it follows `[table]` and `[[array.of.tables]]` headers
and `key = value` lines and maps each key path to the line that defines it, so config errors can say
FILE:LINE. Lines inside multi-line strings and arrays are skipped, except that each inline table
of a multi-line array (a Modbus register map) maps to the line it starts on; keys of inline tables
map to the line of the table (or of the key that holds it).
"""

from __future__ import annotations

import re

PathKey = tuple[str | int, ...]

_BARE_OR_QUOTED = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_DOTTED = rf"{_BARE_OR_QUOTED}(?:\s*\.\s*{_BARE_OR_QUOTED})*"
_KEY_LINE = re.compile(rf"^\s*({_DOTTED})\s*=")
_TABLE = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]\s*(?:#.*)?$")
_ARRAY_TABLE = re.compile(rf"^\s*\[\[\s*({_DOTTED})\s*\]\]\s*(?:#.*)?$")
_PART = re.compile(_BARE_OR_QUOTED)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'')


def _split(dotted: str) -> list[str]:
    parts = []
    for m in _PART.finditer(dotted):
        token = m.group(0)
        if token[0] in "\"'":
            token = token[1:-1]
        parts.append(token)
    return parts


def key_lines(text: str) -> dict[PathKey, int]:
    """Map every key path (tables, array elements and keys) to its 1-based line number."""
    lines: dict[PathKey, int] = {}
    arrays: dict[PathKey, int] = {}
    current: PathKey = ()
    depth = 0  # open brackets of a multi-line array value
    in_string: str | None = None
    array: PathKey | None = None  # the key of the multi-line array being skipped
    nesting = [0, 0]  # [brackets and braces open inside that array, inline tables seen at its top]

    def tables(segment: str, number: int) -> None:
        for ch in _STRING.sub("", segment).split("#", 1)[0]:
            if ch in "[{":
                if ch == "{" and nesting[0] == 1 and array is not None:
                    element: PathKey = (*array, nesting[1])
                    lines[element] = number
                    nesting[1] += 1
                nesting[0] += 1
            elif ch in "]}":
                nesting[0] -= 1

    def resolve(parts: list[str]) -> PathKey:
        path: PathKey = ()
        for part in parts:
            path = (*path, part)
            if path in arrays:
                path = (*path, arrays[path] - 1)
        return path

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw
        if in_string is not None:
            if in_string in line:
                in_string = None
            continue
        if depth > 0:
            tables(line, number)
            depth += line.count("[") - line.count("]")
            continue
        m = _ARRAY_TABLE.match(line)
        if m:
            parts = _split(m.group(1))
            parent = resolve(parts[:-1])
            base = (*parent, parts[-1])
            arrays[base] = arrays.get(base, 0) + 1
            current = (*base, arrays[base] - 1)
            lines.setdefault(base, number)
            lines[current] = number
            continue
        m = _TABLE.match(line)
        if m:
            current = resolve(_split(m.group(1)))
            lines.setdefault(current, number)
            continue
        m = _KEY_LINE.match(line)
        if not m:
            continue
        path = (*current, *_split(m.group(1)))
        lines[path] = number
        rest = line[m.end() :]
        for quote in ('"""', "'''"):
            if rest.count(quote) == 1:
                in_string = quote
        if in_string is None:
            stripped = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", rest.split("#", 1)[0])
            depth = stripped.count("[") - stripped.count("]")
            depth = max(depth, 0)
            if depth > 0:
                array, nesting[:] = path, [0, 0]
                tables(rest, number)
    return lines


def line_of(lines: dict[PathKey, int], path: PathKey) -> int | None:
    """The line of `path`, or of its nearest ancestor that has one."""
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        probe = probe[:-1]
    return None


def dotted(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"
