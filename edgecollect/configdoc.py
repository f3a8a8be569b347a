"""Renders the reference config (configs/edgecollect.toml) from the config dataclasses.

The dataclasses are the single definition of every key; their trailing comments are the docs. A
test compares the checked-in reference with this output, so the two cannot drift apart:

    python -m edgecollect.configdoc > configs/edgecollect.toml
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import re
import sys
import typing
from typing import Any

from edgecollect.config import ARRAY_SOURCES, AgentConfig, BatchConfig, BufferConfig, SpoolConfig
from edgecollect.configtypes import Duration, Size
from edgecollect.sources.host import HostConfig

HEADER = """\
# edgecollect reference configuration.
#
# Every key, with its default, generated from the code by `python -m edgecollect.configdoc`.
# Every key has a default, so this file as it stands (all keys commented out) is the built-in
# default config: host metrics every 10 s into the spool, no upstream (offline).
# Sizes are strings like "64MiB", durations like "10s" or "30d"; secrets are "env:NAME" or
# "file:PATH" (or a literal) and are never logged.
"""

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")
_UNITS_SIZE = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_UNITS_TIME = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))


def _comments(cls: type) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return out
    for line in source.splitlines():
        m = _FIELD_LINE.match(line)
        if m and m.group(2):
            out[m.group(1)] = m.group(2).strip()
    return out


def _fmt_size(n: int) -> str:
    for unit, factor in _UNITS_SIZE:
        if n and n % factor == 0:
            return f'"{n // factor}{unit}"'
    return str(n)


def _fmt_duration(s: float) -> str:
    for unit, factor in _UNITS_TIME:
        if s and (s / factor).is_integer():
            return f'"{int(s / factor)}{unit}"'
    return f'"{s}s"'


def _fmt(value: object, hint: Any) -> str:
    if value is None:
        return "(unset)"
    if hint is Size or (typing.get_origin(hint) is not None and Size in typing.get_args(hint)):
        return _fmt_size(int(value))  # type: ignore[call-overload]
    if hint is Duration:
        return _fmt_duration(float(value))  # type: ignore[arg-type]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{json.dumps(k)} = {_fmt(v, None)}" for k, v in value.items()) + " }"
    if isinstance(value, tuple):
        return "[" + ", ".join(_fmt(v, None) for v in value) + "]"
    return json.dumps(str(value))


def _render(cls: type, table: str, lines: list[str], array: bool = False, commented: bool = False) -> None:
    """One table; inside an array of tables everything is commented out (an example, not a default)."""
    hints = typing.get_type_hints(cls)
    notes = _comments(cls)
    header = f"[[{table}]]" if array else f"[{table}]"
    commented = commented or array
    nested: list[tuple[type, str, bool]] = []
    lines.append(f"# {header}" if commented else header)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        inner = typing.get_args(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            nested.append((hint, f"{table}.{f.name}", False))
            continue
        element = inner[0] if inner else None
        if typing.get_origin(hint) is tuple and isinstance(element, type) and dataclasses.is_dataclass(element):
            nested.append((element, f"{table}.{f.name}", True))
            continue
        if f.default is not dataclasses.MISSING:
            shown = _fmt(f.default, hint)
        elif f.default_factory is not dataclasses.MISSING:
            shown = _fmt(f.default_factory(), hint)
        else:
            shown = "(required)"
        note = f"  # {notes[f.name]}" if f.name in notes else ""
        lines.append(f"# {f.name} = {shown}{note}")
    lines.append("")
    for sub, name, is_array in nested:
        _render(sub, name, lines, is_array, commented)


def render() -> str:
    lines = [HEADER]
    for cls, table in ((AgentConfig, "agent"), (BufferConfig, "buffer"), (BatchConfig, "batch"),
                       (SpoolConfig, "spool"), (HostConfig, "sources.host")):
        _render(cls, table, lines)
    for kind, (module, name) in ARRAY_SOURCES.items():
        lines.append(f"# Any number of {kind} sources, each an array-of-tables entry.")
        _render(getattr(importlib.import_module(module), name), f"sources.{kind}", lines, array=True)
    lines.append("# Where to forward. Absent: offline, everything stays in the spool.")
    upstream = importlib.import_module("edgecollect.exporters.upstream").UpstreamConfig
    _render(upstream, "upstream", lines, array=False)
    lines.append("# Remote management over OpAMP (HTTP polling). Absent: off, nothing of it is loaded.")
    _render(importlib.import_module("edgecollect.opamp.config").OpampConfig, "opamp", lines, array=False)
    text = "\n".join(lines).rstrip() + "\n"
    # These tables must stay commented out: their presence turns forwarding / OpAMP on.
    for table in ("upstream", "opamp"):
        text = text.replace(f"\n[{table}]\n", f"\n# [{table}]\n").replace(f"\n[{table}.", f"\n# [{table}.")
    return text


if __name__ == "__main__":
    sys.stdout.write(render())
