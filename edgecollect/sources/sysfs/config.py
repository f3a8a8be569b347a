"""The `[sources.sysfs]` config and the cheap probe that decides whether "auto" reads anything.

Stdlib only and tiny: config.py imports it for every config (like the host source's), and the
runtime asks `wanted()` before importing the readers. Where a board has none of the buses, the
whole feature costs three directory listings at start: no reader module, no thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from edgecollect.configtypes import Duration, Range

_TEN_SECONDS = Duration(10.0)
W1_DEVICES = "sys/bus/w1/devices"
IIO_DEVICES = "sys/bus/iio/devices"
HWMON = "sys/class/hwmon"
# hwmon inputs the host source does not already report (it reads temp*_input through psutil).
HWMON_INPUT = re.compile(r"^(in|fan|curr|power|energy|humidity)(\d+)_input$")


@dataclass(frozen=True, slots=True)
class SysfsConfig:
    """1-Wire thermometers (w1_therm), IIO sensors (BME280, HTU21, DHT...) and hwmon chips."""

    # "auto" reads only where, at start, the board has a 1-Wire bus, an IIO device or hwmon inputs
    # the host source does not report (sensors added later on such a bus are found by the rescan
    # each interval); "on" reads even when none is there yet; "off" never.
    enabled: Literal["auto", "on", "off"] = "auto"  # auto: only where the buses exist at start; on; off
    # s; a DS18B20 conversion takes 750 ms, each sensor in turn
    interval: Annotated[Duration, Range("100ms", "1d")] = _TEN_SECONDS
    root: str = "/"  # where /sys lives (tests point this at a recorded tree)

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive")

    def wanted(self) -> bool:
        if self.enabled == "auto":
            return present(self.root)
        return self.enabled == "on"


def present(root: str) -> bool:
    """True when the tree under `root` has any bus or chip this source reads. A few listdirs."""
    base = os.path.join(root, "")
    if _listdir(base + W1_DEVICES) or any(n.startswith("iio:device") for n in _listdir(base + IIO_DEVICES)):
        return True
    for chip in _listdir(base + HWMON):
        if any(HWMON_INPUT.match(n) for n in _listdir(os.path.join(base + HWMON, chip))):
            return True
    return False


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
