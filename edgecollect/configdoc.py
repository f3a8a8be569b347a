"""Renders the reference config (configs/edgecollect.toml) from the config dataclasses.

The dataclasses are the single definition of every key; their comments (trailing, or on the
lines just above a field) are the docs, and each number's Range is shown beside its key. A test
compares the checked-in reference with this output, so the two cannot drift apart:

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
from edgecollect.configtypes import Duration, Size, split_range
from edgecollect.sources.host import HostConfig
from edgecollect.sources.sysfs.config import SysfsConfig

HEADER = """\
# edgecollect reference configuration.
#
# Every key, with its default, generated from the code by `python -m edgecollect.configdoc`.
# Every key has a default, so this file as it stands (all keys commented out) is the built-in
# default config: host metrics every 10 s into the spool, no upstream (offline).
# Sizes are strings like "64MiB", durations like "10s" or "30d"; secrets are "env:NAME" or
# "file:PATH" (or a literal) and are never logged. Every count, size and duration has a range,
# shown as [min .. max]; `edgecollect check-config` refuses a value outside it (and nan or inf)
# before anything is allocated.
"""

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:[^#]*?(?:#\s*(.*))?$")
_COMMENT_LINE = re.compile(r"^\s+#\s?(.*)$")
_UNITS_SIZE = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_UNITS_TIME = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))


def _comments(cls: type) -> dict[str, tuple[list[str], str]]:
    """Per field: the comment lines just above it, and its trailing comment (base classes too)."""
    out: dict[str, tuple[list[str], str]] = {}
    for klass in reversed([c for c in cls.__mro__ if dataclasses.is_dataclass(c)]):
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        above: list[str] = []
        for line in source.splitlines():
            c = _COMMENT_LINE.match(line)
            if c:
                above.append(c.group(1).strip())
                continue
            m = _FIELD_LINE.match(line)
            if m:
                out[m.group(1)] = (above, (m.group(2) or "").strip())
            above = []
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


def _range(hint: Any) -> tuple[Any, str]:
    """(the type without Annotated, "[min .. max]" or "")."""
    inner, rng = split_range(hint)
    return inner, "" if rng is None else rng.brackets()


def _render(cls: type, table: str, lines: list[str], array: bool = False, commented: bool = False) -> None:
    """One table; inside an array of tables everything is commented out (an example, not a default)."""
    hints = {name: _range(h) for name, h in typing.get_type_hints(cls, include_extras=True).items()}
    notes = _comments(cls)
    header = f"[[{table}]]" if array else f"[{table}]"
    commented = commented or array
    nested: list[tuple[type, str, bool]] = []
    lines.append(f"# {header}" if commented else header)
    for f in dataclasses.fields(cls):
        hint, bounds = hints[f.name]
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
        above, trailing = notes.get(f.name, ([], ""))
        lines.extend(f"# {text}" if text else "#" for text in above)
        note = " ".join(n for n in (bounds, trailing) if n)
        lines.append(f"# {f.name} = {shown}" + (f"  # {note}" if note else ""))
    lines.append("")
    for sub, name, is_array in nested:
        _render(sub, name, lines, is_array, commented)


def render() -> str:
    lines = [HEADER]
    for cls, table in ((AgentConfig, "agent"), (BufferConfig, "buffer"), (BatchConfig, "batch"),
                       (SpoolConfig, "spool"), (HostConfig, "sources.host"), (SysfsConfig, "sources.sysfs")):
        _render(cls, table, lines)
    for kind, (module, name) in ARRAY_SOURCES.items():
        lines.append(f"# Any number of {kind} sources, each an array-of-tables entry.")
        _render(getattr(importlib.import_module(module), name), f"sources.{kind}", lines, array=True)
    lines.append("# Processors, in file order, between a source and its ring; one entry per processor, by kind.")
    for cls in importlib.import_module("edgecollect.processors.config").KINDS.values():
        _render(cls, "processors", lines, array=True)
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
