"""ModbusSource: one thread owning one bus (an RTU serial port or a TCP endpoint) and its devices.

Each device is read on its own interval; the bus serves them one request at a time (a master on
RS-485 must). A device that stops answering (timeout, CRC error, no connection, a gateway saying
"no response") is skipped for a backoff that doubles with each silent poll, from its interval up to
`backoff_max`, so it costs the bus one timeout per backoff period instead of one per request, and
the other units keep their schedule. One silent read ends that device's poll (its other reads
would only time out too). Exception responses (illegal address, device busy) are answers: the
device stays on schedule. A read spanning unread registers that gets "illegal address" is split
into gap-free reads for the rest of the run (the map has holes the gap rule could not know).

Counters, per device (`source`, `modbus.unit`):

    edgecollect.modbus.requests{outcome}   ok, timeout, crc, connect, bad_response, illegal_function,
                                           illegal_address, illegal_value, device_failure,
                                           acknowledge, device_busy, gateway_path_unavailable,
                                           gateway_no_response, exception_other
    edgecollect.modbus.polls_skipped       polls not made because the device was backing off

A device's state (ok, or the reason it last failed) is logged, and written as a log record, once
per change, never per request.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

from edgecollect.model import AttrValue, LogRecord, Point, Series, attrs
from edgecollect.sources.base import Backoff, SourceContext
from edgecollect.sources.modbus.client import OUTCOMES, SILENT, Bus
from edgecollect.sources.modbus.config import DeviceConfig, ModbusConfig
from edgecollect.sources.modbus.plan import Read, decode, plan, split_gaps
from edgecollect.telemetry import Counter

log = logging.getLogger("edgecollect.modbus")


@dataclass
class _Device:
    cfg: DeviceConfig
    interval_s: float
    reads: tuple[Read, ...]
    series: dict[int, Series]  # id(RegisterConfig) -> its series
    requests: Counter
    skipped: Counter
    backoff: Backoff  # from its interval up to backoff_max, while it stays silent
    next_at: float = 0.0
    silent_polls: int = 0
    state: str = "unknown"


class ModbusSource:
    def __init__(self, cfg: ModbusConfig, ctx: SourceContext, bus: Bus | None = None) -> None:
        self.name = ctx.name
        self._cfg = cfg
        self._ctx = ctx
        self._bus = bus if bus is not None else Bus(cfg)
        self._where = cfg.endpoint or cfg.port
        self.devices = [self._device(d) for d in cfg.devices]

    def _device(self, dcfg: DeviceConfig) -> _Device:
        unit: dict[str, AttrValue] = {"modbus.unit": dcfg.unit}
        requests = self._ctx.counter("requests", "outcome", attributes=unit)
        for outcome in OUTCOMES:
            requests.inc(outcome, 0)  # present from the start so status shows every outcome
        attributes: dict[str, AttrValue] = {"modbus.bus": self._cfg.name, "modbus.unit": dcfg.unit}
        if dcfg.name:
            attributes["modbus.device"] = dcfg.name
        series = {
            id(r): Series(r.metric, r.unit, r.metric_kind, attrs({**r.attributes, **attributes}))
            for r in dcfg.registers
        }
        max_gap = self._cfg.max_gap if dcfg.max_gap is None else dcfg.max_gap
        interval_s = dcfg.interval if dcfg.interval is not None else self._cfg.interval
        return _Device(
            dcfg,
            interval_s,
            plan(dcfg.registers, max_gap),
            series,
            requests,
            self._ctx.counter("polls_skipped", attributes=unit),
            # jitter both ways around the doubling: units that fell silent together retry apart
            self._ctx.backoff(interval_s, self._cfg.backoff_max, low=0.9, high=1.1),
        )

    def run(self) -> None:
        now = time.monotonic()
        for dev in self.devices:
            dev.next_at = now
        try:
            while not self._ctx.stop.is_set():
                dev = min(self.devices, key=lambda d: d.next_at)
                if self._ctx.wait(max(0.0, dev.next_at - time.monotonic())):
                    return
                self.poll(dev)
                self._schedule(dev)
        finally:
            self._bus.close()

    def _schedule(self, dev: _Device) -> None:
        now = time.monotonic()
        step = dev.interval_s
        if not dev.silent_polls:
            dev.backoff.reset()
        else:
            step = max(dev.interval_s, dev.backoff.next())
            if dev.silent_polls > 1:
                dev.skipped.inc(n=max(0, int(step // dev.interval_s) - 1))
        dev.next_at += step
        if dev.next_at < now:  # fell behind (a slow bus, a suspend): skip, don't burst
            dev.next_at = now + step

    def poll(self, dev: _Device) -> int:
        """Read every value of one device once; emit what arrived. Returns the points emitted."""
        points: list[Point] = []
        failure = detail = ""
        now_ns = time.time_ns()
        reads = list(dev.reads)
        i = 0
        while i < len(reads):
            read = reads[i]
            i += 1
            reply = self._bus.read(read.kind, dev.cfg.unit, read.address, read.count)
            dev.requests.inc(reply.outcome)
            if reply.outcome == "illegal_address" and read.has_gaps:
                reads[i:i] = self._split(dev, read)  # gap-free parts: they cannot come back here
                continue
            if reply.outcome != "ok" or reply.values is None:
                if not failure:
                    failure, detail = reply.outcome, reply.detail
                if reply.outcome in SILENT:
                    break  # the rest would only wait for the same silence
                continue
            for reg in read.registers:
                try:
                    value = decode(reg, reply.values, read.address)
                except (IndexError, ValueError, OverflowError, struct.error):  # a short answer: counted above
                    continue
                points.append(Point(dev.series[id(reg)], value, time_ns=now_ns))
        dev.silent_polls = dev.silent_polls + 1 if failure in SILENT else 0
        self._set_state(dev, failure or "ok", detail)
        return self._ctx.emit(points) if points else 0

    def _split(self, dev: _Device, read: Read) -> tuple[Read, ...]:
        parts = split_gaps(read)
        dev.reads = tuple(p for r in dev.reads for p in (parts if r is read else (r,)))
        log.info(
            "%s: unit %d answered illegal address to %s %d+%d (a hole in its map): reading those %d values "
            "in %d gap-free requests from now on",
            self.name, dev.cfg.unit, read.kind, read.address, read.count, len(read.registers), len(parts),
        )
        return parts

    def _set_state(self, dev: _Device, state: str, detail: str) -> None:
        if state == dev.state:
            return
        before, dev.state = dev.state, state
        if state == "ok":
            if before == "unknown":
                return
            text = f"modbus {self._where} unit {dev.cfg.unit}: answering again (was {before})"
            level, number = "INFO", 9
        else:
            text = f"modbus {self._where} unit {dev.cfg.unit}: {state}" + (f" ({detail})" if detail else "")
            level, number = "WARN", 13
        log.log(logging.INFO if level == "INFO" else logging.WARNING, "%s: %s", self.name, text)
        self._ctx.emit_log(LogRecord(
            time.time_ns(), text, level, number,
            attrs({"modbus.bus": self._cfg.name, "modbus.unit": dev.cfg.unit}),
        ))
