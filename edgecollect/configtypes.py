"""Value types that config dataclasses use for their fields, and how their strings parse.

Source and exporter modules declare their config as frozen dataclasses whose field types come from
here (or are plain str/int/float/bool/Literal/tuple/dict); config.py reads the type hints to check
TOML values, so each module's dataclass is the one place its keys are defined.

    Size      "64MiB", "512KB", "1GiB" or an integer number of bytes
    Duration  "10s", "250ms", "5m", "2h", "30d" or a number of seconds
    Secret    "env:NAME", "file:PATH" or a literal; resolved when used, never logged

Every count, size and duration declares its range once, on its type, and config.py checks it
before anything is built (so no value can make the loader or check-config allocate):

    max_points: Annotated[int, Range(1, 10_000_000)] = 100_000
    flush_interval: Annotated[Duration, Range("100ms", "1h")] = _TEN_SECONDS
    max_bytes: Annotated[Size | None, Range("64KiB", "256MiB")] = None   # None is always allowed

A `__post_init__` check that involves more than one field raises `FieldError(key, expected)`
naming the key it blames, so the error points at that key's own line.

Every config dataclass explains its keys, in the user's words, in a `KEY_DOCS` table in its own
body; configdoc renders it into the reference config, and a test fails when a key has no entry or
a choice key (a Literal) does not explain every value it allows:

    KEY_DOCS: ClassVar[KeyDocs] = {
        "interval": "How often the host is read.",
        "overflow": Key("What a full ring does with a new point.", choices={
            "drop_oldest": "overwrite the oldest point", "drop_newest": "refuse the new point"}),
        "max_bytes": Key("Ring budget in bytes.", example='"16MiB"'),   # unset by default
    }
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, NewType, Union

from edgecollect.tomlpos import dotted

Size = NewType("Size", int)  # bytes
Duration = NewType("Duration", float)  # seconds
Secret = NewType("Secret", str)  # env:NAME | file:PATH | literal

_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
    "k": 1024, "m": 1024**2, "g": 1024**3,
}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str | int | float) -> Size:
    """Bytes from "64MiB" etc.; ValueError with the accepted forms otherwise.

    Exact (Decimal) arithmetic: "100000000000TiB" is a big int to compare with a range, never an
    OverflowError or an allocation."""
    if isinstance(text, bool):
        raise ValueError("a size such as \"64MiB\"")
    if isinstance(text, float):
        if not math.isfinite(text) or not text.is_integer():
            raise ValueError('a size such as "64MiB" or a whole number of bytes')
        text = int(text)
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a non-negative size")
        return Size(text)
    m = _NUMBER_UNIT.match(text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError('a size such as "64MiB", "512KB" or a number of bytes')
    return Size(int(Decimal(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]))


def parse_duration(text: str | int | float) -> Duration:
    """Seconds from "10s" etc. or a number of seconds; never nan or infinite."""
    if isinstance(text, bool):
        raise ValueError('a duration such as "10s"')
    if isinstance(text, (int, float)):
        try:
            seconds = float(text)
        except OverflowError:  # an int beyond float: far past any range
            seconds = math.inf
    else:
        m = _NUMBER_UNIT.match(text)
        if not m or m.group(2) not in _DURATION_UNITS:
            raise ValueError('a duration such as "250ms", "10s", "5m", "2h" or "30d"')
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if not math.isfinite(seconds):
        raise ValueError("a finite duration")
    if seconds < 0:
        raise ValueError("a non-negative duration")
    return Duration(seconds)


Bound = int | float | str


@dataclass(frozen=True, slots=True)
class Range:
    """Inclusive bounds of a count, size or duration; sizes and durations may use their TOML
    strings ("64KiB", "1h"). Declared with Annotated on the field (see the module docstring)."""

    low: Bound
    high: Bound

    def bounds(self, kind: object) -> tuple[float, float]:
        """The bounds as numbers in the field's unit (bytes, seconds, or the number itself)."""
        return _bound(self.low, kind), _bound(self.high, kind)

    def text(self) -> str:
        """How the reference config and the errors show it: 'from "100ms" to "1h"'."""
        return f"from {_show(self.low)} to {_show(self.high)}"

    def brackets(self) -> str:
        """How the reference config shows it beside the key: '["100ms" .. "1h"]'."""
        return f"[{_show(self.low)} .. {_show(self.high)}]"

    def contains(self, value: float, kind: object) -> bool:
        low, high = self.bounds(kind)
        return low <= value <= high  # False for nan


def _bound(bound: Bound, kind: object) -> float:
    if isinstance(bound, str):
        return parse_size(bound) if kind is Size else parse_duration(bound)
    return bound


def _show(bound: Bound) -> str:
    if isinstance(bound, str):
        return f'"{bound}"'
    if isinstance(bound, int):
        return f"{bound:_}" if abs(bound) >= 10_000 else str(bound)
    return repr(bound)


def split_range(hint: Any) -> tuple[Any, Range | None]:
    """`Annotated[X, Range(...)]` → (X, the Range); anything else → (hint, None)."""
    if typing.get_origin(hint) is not Annotated:
        return hint, None
    inner, *extras = typing.get_args(hint)
    ranges = [e for e in extras if isinstance(e, Range)]
    return inner, ranges[0] if ranges else None


def range_unit(hint: Any) -> Any:
    """The number type a range applies to: Size, Duration, int or float (None stripped)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return options[0] if len(options) == 1 else hint
    return hint


def type_name(hint: object) -> str:
    """What a value of this field type looks like, for "expected ..." in a config error."""
    inner, rng = split_range(hint)
    if rng is not None:
        unit = range_unit(inner)
        kind = {int: "an integer", float: "a number", Size: "a size", Duration: "a duration"}.get(unit, "a value")
        optional = " (or leave it out)" if unit is not inner else ""
        return f"{kind} {rng.text()}{optional}"
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a finite number"
    if hint is str or hint is Secret:
        return "a string"
    if hint is Size:
        return 'a size such as "64MiB"'
    if hint is Duration:
        return 'a duration such as "10s"'
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (tuple, list):
        return "an array"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a table"
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint) if a is not type(None))
    return str(hint)


def describe(value: object) -> str:
    """A TOML value as an error's "found ...": its kind and a short repr."""
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    if isinstance(value, int) and value.bit_length() > 128:  # repr() refuses ints past 4300 digits
        text = f"of {int(value.bit_length() * math.log10(2))}+ digits"
    else:
        text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind.get(type(value), type(value).__name__)} {text}"


class FieldError(ValueError):
    """A `__post_init__` check that names the key it is about, for the error's FILE:LINE.

        raise FieldError("retry_max", "at least retry_initial")
        raise FieldError("tls.cert_file", "a key_file beside it")     # a key of a nested table
        raise FieldError(("types", key), "one of gauge, cumulative, ...")

    `found` is optional: the loader shows the value as written in the file when the key is there.
    """

    def __init__(self, key: str | tuple[str | int, ...], expected: str, found: str = "") -> None:
        self.key: tuple[str | int, ...] = tuple(key.split(".")) if isinstance(key, str) else key
        self.expected = expected
        self.found = found
        super().__init__(f"{dotted(self.key)}: expected {expected}")


@dataclass(frozen=True, slots=True)
class Key:
    """What one config key means (see the module docstring). `choices` explains every value a
    choice key allows (each value of a table of choices, for `types`); `example` is the value the
    reference shows for a key that is unset or required by default."""

    text: str
    choices: Mapping[str | int, str] | None = None
    example: str = ""


KeyDocs = Mapping[str, str | Key]


def key_docs(cls: type, fallback: KeyDocs | None = None) -> dict[str, Key]:
    """The KEY_DOCS of the class and of its bases (a subclass's entry wins), else `fallback`,
    every entry as a Key; {} when there are none. A config dataclass that extends another (common
    keys in a base) declares only its own keys."""
    table: dict[str, str | Key] = {}
    for klass in reversed(cls.__mro__):
        table.update(vars(klass).get("KEY_DOCS", {}))
    if not table:
        table.update(fallback or {})
    return {name: doc if isinstance(doc, Key) else Key(doc) for name, doc in table.items()}


def resolve_secret(secret: str) -> str:
    """The value behind `env:NAME` / `file:PATH`, or the literal. Raises KeyError/OSError."""
    if secret.startswith("env:"):
        return os.environ[secret[4:]]
    if secret.startswith("file:"):
        with open(secret[5:], encoding="utf-8") as fh:
            return fh.read().strip()
    return secret


def redact(secret: str) -> str:
    """What a log line may show of a secret: where it comes from, never its value."""
    if secret.startswith(("env:", "file:")):
        return secret
    return "<literal, redacted>" if secret else ""
