"""Value types that config dataclasses use for their fields, and how their strings parse.

Source and exporter modules declare their config as frozen dataclasses whose field types come from
here (or are plain str/int/float/bool/Literal/tuple/dict); config.py reads the type hints to check
TOML values, so each module's dataclass is the one place its keys are defined.

    Size      "64MiB", "512KB", "1GiB" or an integer number of bytes
    Duration  "10s", "250ms", "5m", "2h", "30d" or a number of seconds
    Secret    "env:NAME", "file:PATH" or a literal; resolved when used, never logged
"""

from __future__ import annotations

import os
import re
from typing import NewType

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


def parse_size(text: str | int) -> Size:
    """Bytes from "64MiB" etc.; ValueError with the accepted forms otherwise."""
    if isinstance(text, bool):
        raise ValueError("a size such as \"64MiB\"")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a non-negative size")
        return Size(text)
    m = _NUMBER_UNIT.match(text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError('a size such as "64MiB", "512KB" or a number of bytes')
    return Size(int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]))


def parse_duration(text: str | int | float) -> Duration:
    if isinstance(text, bool):
        raise ValueError('a duration such as "10s"')
    if isinstance(text, (int, float)):
        if text < 0:
            raise ValueError("a non-negative duration")
        return Duration(float(text))
    m = _NUMBER_UNIT.match(text)
    if not m or m.group(2) not in _DURATION_UNITS:
        raise ValueError('a duration such as "250ms", "10s", "5m", "2h" or "30d"')
    return Duration(float(m.group(1)) * _DURATION_UNITS[m.group(2)])


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
