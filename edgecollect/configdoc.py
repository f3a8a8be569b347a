"""Renders the reference config (configs/edgecollect.toml) from the config dataclasses.

The dataclasses are the single definition of every key: its type (with its Range, or its Literal
choices), its default, and its explanation in the KEY_DOCS table of the dataclass (configtypes.py).
A test compares the checked-in reference with this output, so the two cannot drift apart, and fails
on any key without an explanation or any choice without its meaning:

    python -m edgecollect.configdoc > configs/edgecollect.toml

A new section: a KEY_DOCS table in its dataclass, and one line in SECTIONS (or
SECTIONS_AFTER_SOURCES). An array source needs no line: it is found in config.ARRAY_SOURCES. A
nested table is found from its parent's field and introduced by that field's KEY_DOCS entry.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import sys
import textwrap
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from edgecollect.config import ARRAY_SOURCES, AgentConfig, BatchConfig, BufferConfig, SpoolConfig
from edgecollect.configtypes import Duration, Key, Size, key_docs, split_range
from edgecollect.sources.hostconfig import HostConfig

HEADER = """\
# edgecollect reference configuration.
#
# Every key with what it means, the values it allows and its default, generated from the code by
# `python -m edgecollect.configdoc`. Each key is shown set to its default, so this file as it stands
# (all keys commented out) is the built-in default config: host metrics every 10 s into the spool,
# no upstream (offline). Uncomment a key to change it.
# Sizes are strings like "64MiB", durations like "10s" or "30d"; secrets are "env:NAME" or
# "file:PATH" (or the secret itself) and are never logged. Every count, size and duration has a
# range; `edgecollect check-config` refuses a value outside it before anything is allocated.
"""

_UNITS_SIZE = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))
_UNITS_TIME = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001))
_WIDTH = 100

def docs_of(cls: type) -> dict[str, Key]:
    """The explanation of every key of `cls` that has one."""
    return key_docs(cls)


def _fmt_size(n: int) -> str:
    for unit, factor in _UNITS_SIZE:
        if n and n % factor == 0:
            return f'"{n // factor}{unit}"'
    return str(n)


def _fmt_duration(s: float) -> str:
    if s == 0:
        return '"0s"'
    for unit, factor in _UNITS_TIME:
        if s and (s / factor).is_integer():
            return f'"{int(s / factor)}{unit}"'
    return f'"{s}s"'


def _fmt(value: object, hint: Any) -> str:
    """A default as TOML."""
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
    raise TypeError(f"no TOML form for the default {value!r}: give the key an example in KEY_DOCS")


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the reference, in the order it is rendered."""

    name: str  # "sources.mqtt.tls"
    cls: type
    array: bool  # [[name]]: any number of them
    commented: bool  # shown as an example (an array entry, or upstream whose presence turns it on)
    intro: str  # what the table is for


class Section(NamedTuple):
    """A top-level table: where its dataclass is (imported only to render), and what it is for."""

    name: str
    where: type | tuple[str, str]  # the class, or (module, class name) for one imported lazily
    intro: str
    array: bool = False  # [[name]]: any number of them
    commented: bool = False  # its presence turns something on: shown as an example only


# The top-level tables in the order the reference shows them; the array sources of
# config.ARRAY_SOURCES come between the two groups. A section listed nowhere is not rendered.
SECTIONS: tuple[Section, ...] = (
    Section("agent", AgentConfig, "The agent itself: where it keeps its state, what it logs, its own limits."),
    Section("buffer", BufferConfig, "The ring each source writes its readings into, between two flushes."),
    Section("batch", BatchConfig, "When rings are cut into batches and written to the spool."),
    Section("spool", SpoolConfig, "Batches on disk, kept until the collector has them (or they expire)."),
    Section("sources.host", HostConfig, "Metrics of the gateway itself."),
    Section("sources.sysfs", ("edgecollect.sources.sysfs.config", "SysfsConfig"),
            "Sensors the Linux kernel exposes under /sys: 1-Wire, IIO and hwmon."),
)
SECTIONS_AFTER_SOURCES: tuple[Section, ...] = (
    Section("upstream", ("edgecollect.exporters.upstream", "UpstreamConfig"),
            "Where to send. Absent: offline, everything stays in the spool.", commented=True),
    *(Section("processors", ("edgecollect.processors.config", cls_name), intro, array=True, commented=True)
      for cls_name, intro in (
          ("FilterConfig", "Processors: between each source and its ring, in the order of the file, any "
           "number of each kind. Absent: readings are stored as they come. A filter:"),
          ("AttributesConfig", "An attributes processor:"),
          ("TransformConfig", "A transform processor:"),
          ("DeadbandConfig", "A deadband processor:"),
          ("AggregateConfig", "An aggregate processor:"))),
    Section("opamp", ("edgecollect.opamp.config", "OpampConfig"),
            "Remote management over OpAMP: status reports and, if allowed, configs from a fleet server. "
            "Absent: off, nothing of it is loaded.", commented=True),
)


def _resolve(where: type | tuple[str, str]) -> type:
    if isinstance(where, tuple):
        found: type = getattr(importlib.import_module(where[0]), where[1])
        return found
    return where


def _nested(cls: type) -> list[tuple[str, type, bool]]:
    """The fields of `cls` that are tables of their own: (key, dataclass, is an array of tables)."""
    out = []
    for name, hint in typing.get_type_hints(cls).items():
        args = typing.get_args(hint)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            out.append((name, hint, False))
        elif typing.get_origin(hint) is tuple and args and isinstance(args[0], type) \
                and dataclasses.is_dataclass(args[0]):
            out.append((name, args[0], True))
    return out


def tables() -> list[Table]:
    """Every table of the reference, nested ones right after their parent."""
    sources = tuple(
        Section(f"sources.{kind}", where, f"Any number of {kind} sources, each an entry [[sources.{kind}]]; every "
                "source writes into a ring of its own.", array=True, commented=True)
        for kind, where in ARRAY_SOURCES.items()
    )
    out: list[Table] = []

    def add(table: Table) -> None:
        out.append(table)
        docs = docs_of(table.cls)
        for key, sub, array in _nested(table.cls):
            intro = docs[key].text if key in docs else ""
            add(Table(f"{table.name}.{key}", sub, array, table.commented or array, intro))

    for section in (*SECTIONS, *sources, *SECTIONS_AFTER_SOURCES):
        add(Table(section.name, _resolve(section.where), section.array, section.commented, section.intro))
    return out


def _choice(value: str | int) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def explain(name: str, hint: Any, default: object, doc: Key) -> list[str]:
    """The comment lines and the (commented-out) key line of one key."""
    inner, rng = split_range(hint)
    text = [doc.text]
    if rng is not None:
        text.append(f"Allowed: {rng.text()}.")
    if default is dataclasses.MISSING:
        text.append("Required; for example:")
        shown = doc.example
    elif default is None:
        text.append("Not set by default; for example:")
        shown = doc.example
    else:
        shown = _fmt(default, inner)
        if doc.example:  # a default that would not make a working table (e.g. neither of two keys set)
            text.append("Empty by default; for example:" if shown in ('""', "[]", "{}")
                        else f"By default {shown}; for example:")
            shown = doc.example
    lines = [f"# {line}" for line in textwrap.wrap(" ".join(text), _WIDTH - 2)]
    if doc.choices:
        single = typing.get_origin(_unset_or(inner)) is Literal
        lines.append("# Allowed values:" if single else "# Allowed values of each entry:")
        width = max(len(_choice(v)) for v in doc.choices)
        for value, meaning in doc.choices.items():
            head = f"#   {_choice(value):<{width}}  "
            indent = "#" + " " * (len(head) - 1)
            lines.extend(textwrap.wrap(meaning, _WIDTH, initial_indent=head, subsequent_indent=indent))
    lines.append(f"# {name} = {shown}")
    return lines


def _default(f: dataclasses.Field[Any]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _unset_or(hint: Any) -> Any:
    """`X` of `X | None` (a key that may stay unset); any other hint as it is."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def _choices(hint: Any) -> tuple[object, ...]:
    """The values a choice key allows (of each entry, for a table or array of choices); () if none."""
    inner = _unset_or(split_range(hint)[0])
    if typing.get_origin(inner) is dict:
        inner = typing.get_args(inner)[-1]
    elif typing.get_origin(inner) is tuple:  # tuple[X, ...]
        inner = typing.get_args(inner)[0]
    return typing.get_args(inner) if typing.get_origin(inner) is Literal else ()


def undocumented(cls: type) -> list[str]:
    """What the reference would leave unexplained about `cls`'s keys, one line per problem."""
    hints = typing.get_type_hints(cls, include_extras=True)
    docs = docs_of(cls)
    problems = [f"{key}: explained but not a key" for key in docs if key not in hints or key == "KEY_DOCS"]
    for f in dataclasses.fields(cls):
        doc = docs.get(f.name)
        if doc is None or not doc.text.strip():
            problems.append(f"{f.name}: no explanation")
            continue
        allowed = _choices(hints[f.name])
        explained = tuple(doc.choices or ())
        if set(allowed) != set(explained):
            problems.append(f"{f.name}: allows {list(allowed)}, explains {list(explained)}")
        if _default(f) in (None, dataclasses.MISSING) and not doc.example:
            problems.append(f"{f.name}: no default and no example")
    return problems


def _render(table: Table, lines: list[str]) -> None:
    hints = typing.get_type_hints(table.cls, include_extras=True)
    docs = docs_of(table.cls)
    nested = {key for key, _, _ in _nested(table.cls)}
    header = f"[[{table.name}]]" if table.array else f"[{table.name}]"
    lines.extend(f"# {line}" for line in textwrap.wrap(table.intro, _WIDTH - 2))
    lines.append(f"# {header}" if table.commented else header)
    for f in dataclasses.fields(table.cls):
        if f.name in nested:
            continue
        doc = docs.get(f.name) or Key("")  # the test names every key without an explanation
        lines.append("#")
        lines.extend(explain(f.name, hints[f.name], _default(f), doc))
    lines.append("")


def render() -> str:
    lines = [HEADER]
    for table in tables():
        _render(table, lines)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
