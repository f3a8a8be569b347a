"""SysfsSource: one thread reading 1-Wire, IIO and hwmon sensors from /sys every interval.

Counters (`source` = "sysfs"):

    edgecollect.sysfs.readings{outcome}   ok, crc, power_on_reset, bus_error, read_error, parse
    edgecollect.sysfs.devices{bus}        gauge: devices seen on each bus at the last scan

A device that appears or disappears (hot-plug, a loose 1-Wire wire) and a device whose readings
turn bad or good again are logged, and written as log records, once per change; a flaky bus
never floods the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edgecollect.model import LogRecord, Point, Series
from edgecollect.sources.base import SourceContext
from edgecollect.sources.sysfs.config import SysfsConfig
from edgecollect.sources.sysfs.readers import Reading, read_hwmon, read_iio, read_w1

log = logging.getLogger("edgecollect.sysfs")
OUTCOMES = ("ok", "crc", "power_on_reset", "bus_error", "read_error", "parse")


class SysfsSource:
    name = "sysfs"

    def __init__(self, cfg: SysfsConfig, ctx: SourceContext) -> None:
        self._cfg = cfg
        self._ctx = ctx
        self._readings = ctx.counter("readings", "outcome")
        for outcome in OUTCOMES:
            self._readings.inc(outcome, 0)
        self._buses: dict[str, Callable[[str], list[Reading]]] = {"w1": read_w1, "iio": read_iio, "hwmon": read_hwmon}
        self._seen: dict[str, int] = {bus: 0 for bus in self._buses}
        for bus in self._buses:
            ctx.gauge("devices", self._seen_on(bus), attributes={"bus": bus})
        self._state: dict[str, str] = {}  # device -> its last outcome

    def _seen_on(self, bus: str) -> Callable[[], int]:
        return lambda: self._seen[bus]

    def collect(self) -> list[Point]:
        points: list[Point] = []
        present: dict[str, str] = {}
        for bus, reader in self._buses.items():
            try:
                readings = reader(self._cfg.root)
            except Exception:  # a reader bug must not end the thread: count it, go on
                log.exception("sysfs: reading the %s bus failed", bus)
                self._readings.inc("read_error")
                continue
            self._seen[bus] = len({r.device.split(".")[0] for r in readings})
            for r in readings:
                self._readings.inc(r.outcome)
                present[r.device] = r.outcome
                if r.outcome == "ok":
                    points.append(Point(Series(r.metric, r.unit, r.kind, r.attributes), r.value))
        self._track(present)
        return points

    def _track(self, present: dict[str, str]) -> None:
        for device, outcome in present.items():
            before = self._state.get(device)
            if before == outcome:
                continue
            if before is None:
                self._event("INFO", f"sysfs sensor {device} found" + ("" if outcome == "ok" else f" ({outcome})"))
            elif outcome == "ok":
                self._event("INFO", f"sysfs sensor {device} reading again (was {before})")
            else:
                self._event("WARN", f"sysfs sensor {device}: {outcome}")
        for device in self._state.keys() - present.keys():
            self._event("WARN", f"sysfs sensor {device} gone")
        self._state = present

    def _event(self, level: str, text: str) -> None:
        log.log(logging.INFO if level == "INFO" else logging.WARNING, "%s", text)
        self._ctx.emit_log(LogRecord(time.time_ns(), text, level, 9 if level == "INFO" else 13))

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._ctx.wait(max(0.0, next_at - time.monotonic())):
            points = self.collect()
            if points:
                self._ctx.emit(points)
            next_at += self._cfg.interval
            now = time.monotonic()
            if next_at < now:  # a slow 1-Wire bus or a suspend: skip, don't burst
                next_at = now + self._cfg.interval
