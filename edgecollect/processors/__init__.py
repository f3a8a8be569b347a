"""The `[[processors]]` chain between a source and its ring (design.md, "processors").

Imported only when the config has `[[processors]]`. The registry below maps each `kind` to its
config dataclass (config.py) and its stage class; `load` is the hook config.py calls,
`ring_factory` the one runtime.py calls for each source, `explain` what `check-config --explain`
prints. A processor applies to the sources its `sources` globs match; with none, to every source
except the agent's own telemetry ("self"), which a processor only sees when it names "self".
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.model import SeriesRegistry
from edgecollect.processors.aggregate import Aggregate
from edgecollect.processors.attributes import Attributes
from edgecollect.processors.base import Env, Stage, glob_matcher
from edgecollect.processors.chain import Chain, ProcessingRing
from edgecollect.processors.config import KINDS, ProcessorConfig
from edgecollect.processors.deadband import Deadband
from edgecollect.processors.filter import Filter
from edgecollect.processors.transform import Transform
from edgecollect.telemetry import Telemetry

__all__ = ["Chain", "ProcessingRing", "build_chain", "close_all", "explain", "load", "ring_factory"]

STAGES: dict[str, Callable[..., Stage]] = {
    "filter": Filter,
    "attributes": Attributes,
    "transform": Transform,
    "deadband": Deadband,
    "aggregate": Aggregate,
}
SELF_SOURCE = "self"


class _Loader(Protocol):
    def error(self, path: tuple[str | int, ...], expected: str, found: str = "") -> Exception: ...
    def convert(self, value: object, hint: Any, path: tuple[str | int, ...]) -> Any: ...


def load(loader: _Loader, data: object) -> tuple[ProcessorConfig, ...]:
    """config.py's hook: each `[[processors]]` table to its kind's dataclass, FILE:LINE errors."""
    if not isinstance(data, list):
        raise loader.error(("processors",), "an array of tables ([[processors]])", type(data).__name__)
    out = []
    for i, table in enumerate(data):
        path: tuple[str | int, ...] = ("processors", i)
        if not isinstance(table, dict):
            raise loader.error(path, "a table", type(table).__name__)
        kind = table.get("kind")
        if kind not in KINDS:
            found = "nothing (required key missing)" if kind is None else f"{kind!r}"
            raise loader.error((*path, "kind"), "one of " + ", ".join(KINDS), found)
        out.append(loader.convert(table, KINDS[kind], path))
    return tuple(out)


def processor_name(cfg: ProcessorConfig, index: int) -> str:
    return cfg.name or f"{cfg.kind}.{index}"


def applies_to(cfg: ProcessorConfig, source: str) -> bool:
    if not cfg.sources:
        return source != SELF_SOURCE
    if source == SELF_SOURCE:
        return SELF_SOURCE in cfg.sources  # named, not merely matched by a glob such as "*"
    return glob_matcher(cfg.sources)(source)


def build_chain(
    configs: Iterable[ProcessorConfig], source: str, registry: SeriesRegistry, telemetry: Telemetry,
) -> Chain | None:
    """The chain for `source`, or None when no processor applies to it."""
    env = Env(registry, telemetry)
    stages = [
        STAGES[cfg.kind](cfg, processor_name(cfg, i), env)
        for i, cfg in enumerate(configs)
        if applies_to(cfg, source)
    ]
    if not stages:
        return None
    for stage in stages:
        base = {"processor": stage.name, "source": source}
        telemetry.gauge("processor", "series", stage.state_size, unit="{series}", base=base)
    return Chain(stages)


def ring_factory(
    configs: tuple[ProcessorConfig, ...], source: str, registry: SeriesRegistry, telemetry: Telemetry, clock: Clock,
) -> Callable[..., Ring]:
    """runtime.py's hook: how to make `source`'s ring (plain when no processor applies)."""
    chain = build_chain(configs, source, registry, telemetry)
    if chain is None:
        return Ring
    return functools.partial(ProcessingRing, chain, clock)


def close_all(rings: Iterable[Ring]) -> None:
    """Shutdown: every processing ring emits what its chain still holds."""
    for ring in rings:
        if isinstance(ring, ProcessingRing):
            ring.close()


def explain(configs: tuple[ProcessorConfig, ...], sources: Iterable[str]) -> str:
    """What each source's points go through, for `check-config --explain`."""
    registry, telemetry = SeriesRegistry(), Telemetry()
    lines = []
    for source in sources:
        chain = build_chain(configs, source, registry, telemetry)
        lines.append(f"{source}:")
        if chain is None:
            lines.append("  (no processors) -> ring")
            continue
        for stage, cfg in zip(chain.stages, [c for c in configs if applies_to(c, source)], strict=True):
            lines.append(f"  {stage.name} [metrics {', '.join(cfg.metrics)}] {stage.describe()}")
        lines.append("  -> ring")
    return "\n".join(lines)
