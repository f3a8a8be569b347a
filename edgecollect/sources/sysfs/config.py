"""The `[sources.sysfs]` config and the cheap probe that decides whether "auto" reads anything.

Stdlib only and tiny: config.py imports it for every config (like the host source's), and the
runtime asks `wanted()` before importing the readers. Where a board has none of the buses, the
whole feature costs three directory listings at start: no reader module, no thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from edgecollect.configtypes import Duration, Key, KeyDocs, Range

_TEN_SECONDS = Duration(10.0)
W1_DEVICES = "sys/bus/w1/devices"
IIO_DEVICES = "sys/bus/iio/devices"
HWMON = "sys/class/hwmon"
# hwmon inputs the host source does not already report (it reads temp*_input through psutil).
HWMON_INPUT = re.compile(r"^(in|fan|curr|power|energy|humidity)(\d+)_input$")


@dataclass(frozen=True, slots=True)
class SysfsConfig:
    """1-Wire thermometers (w1_therm), IIO sensors (BME280, HTU21, DHT...) and hwmon chips."""

    enabled: Literal["auto", "on", "off"] = "auto"
    interval: Annotated[Duration, Range("100ms", "1d")] = _TEN_SECONDS
    root: str = "/"

    KEY_DOCS: ClassVar[KeyDocs] = {
        "enabled": Key("Whether the sensors the kernel exposes under /sys are read: 1-Wire thermometers "
        "(DS18B20), IIO sensors (BME280, HTU21, DHT...) and hwmon chips (voltages, fans, currents, power, humidity; "
        "hwmon temperatures are the host source's).", choices={
            "auto": "only if, at start, the board has a 1-Wire bus, an IIO device or such hwmon inputs "
            "(sensors added later on those are found by the rescan each interval)",
            "on": "always, even when none is there yet",
            "off": "never"}),
        "interval": "How often every sensor is read (and the buses rescanned for added or removed ones). "
        "A DS18B20 takes 750 ms per reading, one sensor after another.",
        "root": 'Where the /sys tree is found; "/" on a gateway (tests point it at a recorded tree).',
    }

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
