"""The `[[processors]]` tables as frozen dataclasses, one per kind (fields = TOML keys).

config.py converts each table with its generic loader (FILE:LINE errors) after `load()` below has
picked the dataclass by `kind`; checks that need more than a type live in `__post_init__` and say
"<key> must be <rule>", which the loader turns into an error on that key's own line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Annotated, Any, Literal

from edgecollect.configtypes import Duration, Range

AttrValue = str | int | float | bool
Function = Literal["min", "max", "mean", "last", "count"]
FUNCTIONS: tuple[Function, ...] = ("min", "max", "mean", "last", "count")
_ZERO = Duration(0.0)
_ONE_MINUTE = Duration(60.0)

# Metric names the built-in sources emit as cumulative sums: an aggregate that names one of them
# explicitly with min/max/mean is a config error (a counter's mean is meaningless; it keeps last).
KNOWN_COUNTERS = (
    "system.disk.io", "system.disk.operations", "system.network.io", "system.network.errors",
    "system.network.dropped", "process.cpu.time",
)


def check_globs(key: str, globs: tuple[str, ...]) -> None:
    """A glob is fnmatch syntax; an empty one or an unclosed `[` is almost certainly a typo."""
    for glob in globs:
        if not glob or glob.count("[") > glob.count("]") or glob != glob.strip():
            raise ValueError(f"{key} must be globs, non-empty, without stray spaces or an unclosed '[' ({glob!r})")
        re.compile(translate(glob))


@dataclass(frozen=True, slots=True)
class _Common:
    kind: str = ""  # filter | attributes | transform | deadband | aggregate
    name: str = ""  # names the processor in counters and --explain; default "<kind>.<index>"
    sources: tuple[str, ...] = ()  # source-name globs; empty: every source but the agent's own ("self")
    metrics: tuple[str, ...] = ("*",)  # metric-name globs this processor acts on

    def __post_init__(self) -> None:
        check_globs("sources", self.sources)
        check_globs("metrics", self.metrics)


@dataclass(frozen=True, slots=True)
class FilterConfig(_Common):
    kind: str = "filter"
    include: tuple[str, ...] = ()  # keep only metrics matching these globs (applied first)
    exclude: tuple[str, ...] = ()  # then drop metrics matching these globs
    where: dict[str, str] = field(default_factory=dict)  # act only on points whose attributes match these globs

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        check_globs("include", self.include)
        check_globs("exclude", self.exclude)
        check_globs("where", tuple(self.where.values()))
        if not self.include and not self.exclude:
            raise ValueError("include must be non-empty, or exclude: a filter with neither keeps everything")


@dataclass(frozen=True, slots=True)
class AttributesConfig(_Common):
    kind: str = "attributes"
    set: dict[str, AttrValue] = field(default_factory=dict)  # add or overwrite
    delete: tuple[str, ...] = ()  # attribute keys to remove
    rename: dict[str, str] = field(default_factory=dict)  # old key = new key

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        if not (self.set or self.delete or self.rename):
            raise ValueError("set must be non-empty, or delete, or rename: this processor would change nothing")


@dataclass(frozen=True, slots=True)
class TransformConfig(_Common):
    kind: str = "transform"
    rename: dict[str, str] = field(default_factory=dict)  # metric name = new name
    scale: Annotated[float, Range(-10**12, 10**12)] = 1.0  # value × scale + offset, for every selected metric
    offset: Annotated[float, Range(-10**12, 10**12)] = 0.0
    unit: str = ""  # new UCUM unit for the selected metrics; empty keeps theirs


@dataclass(frozen=True, slots=True)
class DeadbandConfig(_Common):
    kind: str = "deadband"
    # emit when |value - last emitted| >= threshold (0: on any change)
    threshold: Annotated[float, Range(0, 10**12)] = 0.0
    # or: when the change is >= this percentage of the last emitted value
    percent: Annotated[float | None, Range(0.001, 10_000)] = None
    # emit at least this often while values arrive (0: never forced)
    max_silence: Annotated[Duration, Range("0s", "1d")] = _ZERO

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        if self.threshold < 0:
            raise ValueError("threshold must be >= 0")
        if self.percent is not None and (self.percent <= 0 or self.threshold):
            raise ValueError("percent must be > 0, and not combined with threshold")


@dataclass(frozen=True, slots=True)
class AggregateConfig(_Common):
    kind: str = "aggregate"
    window: Annotated[Duration, Range("1s", "1d")] = _ONE_MINUTE  # windows align to wall-clock multiples of this
    functions: tuple[Function, ...] = FUNCTIONS  # each becomes a series <name>.<function> (gauges)
    keep_raw: bool = False  # also pass the raw points on
    # after_window: a QoS>=1 message feeding a window is acked once that window is durable (no
    # acked data lost on kill -9; acks wait up to a window). on_receipt: acked like any message,
    # so a kill -9 loses the open window.
    ack: Literal["after_window", "on_receipt"] = "after_window"  # after_window: nothing acked is lost

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        if self.window < 1.0:
            raise ValueError("window must be at least 1s")
        if not self.functions or len(set(self.functions)) != len(self.functions):
            raise ValueError("functions must be a non-empty list without repeats")
        numeric = [f for f in self.functions if f in ("min", "max", "mean")]
        explicit = [g for g in self.metrics if g != "*"]
        for glob in explicit:
            hit = next((n for n in KNOWN_COUNTERS if re.fullmatch(translate(glob), n)), None)
            if hit and numeric:
                raise ValueError(
                    f"functions must be suited to the metric kind: {', '.join(numeric)} apply to gauges, "
                    f"and {hit} (matched by {glob!r}) is a cumulative sum, which keeps its last value"
                )


ProcessorConfig = FilterConfig | AttributesConfig | TransformConfig | DeadbandConfig | AggregateConfig

KINDS: dict[str, type[Any]] = {
    "filter": FilterConfig,
    "attributes": AttributesConfig,
    "transform": TransformConfig,
    "deadband": DeadbandConfig,
    "aggregate": AggregateConfig,
}
