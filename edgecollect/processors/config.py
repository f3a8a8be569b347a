"""The `[[processors]]` tables as frozen dataclasses, one per kind (fields = TOML keys).

config.py converts each table with its generic loader (FILE:LINE errors) after `load()` below has
picked the dataclass by `kind`; checks that need more than a type live in `__post_init__` and say
"<key> must be <rule>", which the loader turns into an error on that key's own line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import translate
from typing import Annotated, Any, ClassVar, Literal

from edgecollect.configtypes import Duration, Key, KeyDocs, Range

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
    kind: str = ""
    name: str = ""
    sources: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("*",)

    KEY_DOCS: ClassVar[KeyDocs] = {
        "kind": "What this processor does: filter, attributes, transform, deadband or aggregate. Processors "
        "apply in the order of the file, each to what the one before left.",
        "name": "Names the processor in its counters and in check-config --explain. Empty: <kind>.<position>.",
        "sources": 'The sources it applies to, by name, as globs ("mqtt.*"). Empty: every source except the '
        'agent\'s own metrics, which it sees only when one of these matches "self".',
        "metrics": "The metrics it acts on, as name globs; the others pass it unchanged.",
    }

    def __post_init__(self) -> None:
        check_globs("sources", self.sources)
        check_globs("metrics", self.metrics)


@dataclass(frozen=True, slots=True)
class FilterConfig(_Common):
    kind: str = "filter"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    where: dict[str, str] = field(default_factory=dict)

    KEY_DOCS: ClassVar[KeyDocs] = {
        "kind": "Drops points by metric name (each drop is counted).",
        "include": Key("Keep only the metrics whose names match one of these globs. Empty: keep all but those of "
        "exclude. Give include, exclude or both.", example='["system.cpu.*", "system.memory.*"]'),
        "exclude": "Then drop the metrics whose names match one of these globs.",
        "where": 'Decide only for points whose attributes match, each key to a glob: { device = "pump*" }; '
        "other points pass. Empty: every point.",
    }

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
    set: dict[str, AttrValue] = field(default_factory=dict)
    delete: tuple[str, ...] = ()
    rename: dict[str, str] = field(default_factory=dict)

    KEY_DOCS: ClassVar[KeyDocs] = {
        "kind": "Changes the attributes of points: rename first, then delete, then set.",
        "set": Key("Attributes to add, or overwrite when present. Give set, delete, rename or several.",
                   example='{ site = "plant-3", line = 2 }'),
        "delete": "Attribute keys to remove.",
        "rename": 'Attribute keys to rename, old = new: { dev = "device" }.',
    }

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        if not (self.set or self.delete or self.rename):
            raise ValueError("set must be non-empty, or delete, or rename: this processor would change nothing")


@dataclass(frozen=True, slots=True)
class TransformConfig(_Common):
    kind: str = "transform"
    rename: dict[str, str] = field(default_factory=dict)
    scale: Annotated[float, Range(-10**12, 10**12)] = 1.0
    offset: Annotated[float, Range(-10**12, 10**12)] = 0.0
    unit: str = ""

    KEY_DOCS: ClassVar[KeyDocs] = {
        "kind": "Renames metrics, converts their values linearly and changes their unit.",
        "rename": 'Metrics to rename, old name = new name: { "temp" = "greenhouse.temperature" }.',
        "scale": "Every selected value becomes value × scale + offset (e.g. 0.001 for Wh to kWh).",
        "offset": "Added after scale (e.g. -273.15 for K to °C).",
        "unit": 'The new unit (UCUM, "kW.h", "Cel") of the selected metrics. Empty: they keep theirs.',
    }


@dataclass(frozen=True, slots=True)
class DeadbandConfig(_Common):
    kind: str = "deadband"
    threshold: Annotated[float, Range(0, 10**12)] = 0.0
    percent: Annotated[float | None, Range(0.001, 10_000)] = None
    max_silence: Annotated[Duration, Range("0s", "1d")] = _ZERO

    KEY_DOCS: ClassVar[KeyDocs] = {
        "kind": "Reports by exception: a point is kept only when its value moved enough since the last one "
        "kept for its series; the others are dropped and counted. A counter that resets is always kept.",
        "threshold": "Keep a point when it differs from the last kept value by at least this much. 0: on any "
        "change.",
        "percent": Key("Instead of threshold: keep a point when it differs from the last kept value by at least "
        "this percentage of it. Not set: threshold applies.", example="2.5"),
        "max_silence": "While points keep arriving, keep one at least this often even without a change, so a "
        "steady value still shows it is alive. 0: only on a change.",
    }

    def __post_init__(self) -> None:
        _Common.__post_init__(self)
        if self.threshold < 0:
            raise ValueError("threshold must be >= 0")
        if self.percent is not None and (self.percent <= 0 or self.threshold):
            raise ValueError("percent must be > 0, and not combined with threshold")


@dataclass(frozen=True, slots=True)
class AggregateConfig(_Common):
    kind: str = "aggregate"
    window: Annotated[Duration, Range("1s", "1d")] = _ONE_MINUTE
    functions: tuple[Function, ...] = FUNCTIONS
    keep_raw: bool = False
    ack: Literal["after_window", "on_receipt"] = "after_window"

    KEY_DOCS: ClassVar[KeyDocs] = {
        "kind": "Replaces the points of each series by one summary per time window. A counter is never "
        "averaged: it keeps its last value per window (a delta its sum).",
        "window": "The span each summary covers, aligned to the clock (1m: each calendar minute). A window "
        "is sent once it has ended, 2 s later for points still in flight.",
        "functions": Key("What a gauge's window becomes: one series <name>.<function> per entry.", choices={
            "min": "the lowest value", "max": "the highest value", "mean": "the average",
            "last": "the latest value", "count": "how many points the window had"}),
        "keep_raw": "Also pass the original points on, besides the summaries.",
        "ack": Key("When an MQTT message (QoS 1 or 2) whose values went into a window is acknowledged to the "
        "broker.", choices={
            "after_window": "once the window's summary is safely on disk: nothing acknowledged is lost to a "
            "crash or power cut, but acknowledgements wait up to a window",
            "on_receipt": "at once, like any message: a crash loses the open window"}),
    }

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
