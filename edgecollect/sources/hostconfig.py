"""The `[sources.host]` config, apart from the source so that config.py (every `check-config`, every
config load) does not import psutil: only a running agent with host metrics on does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from edgecollect.configtypes import Duration, KeyDocs, Range

_TEN_SECONDS = Duration(10.0)


@dataclass(frozen=True, slots=True)
class HostConfig:
    enabled: bool = True
    interval: Annotated[Duration, Range("100ms", "1d")] = _TEN_SECONDS
    root: str = "/"
    per_cpu: bool = True
    max_series: Annotated[int, Range(1, 1_000_000)] = 5_000

    KEY_DOCS: ClassVar[KeyDocs] = {
        "enabled": "Read the gateway's own CPU, memory, disk, network and temperature metrics.",
        "interval": "How often the host metrics are read.",
        "root": "Where /proc and /sys are found (a container with the host's mounted elsewhere; tests use "
        "a fixture tree).",
        "per_cpu": "Also report the utilization of each CPU core, not only the total.",
        "max_series": "This source's share of agent.max_series.",
    }

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
