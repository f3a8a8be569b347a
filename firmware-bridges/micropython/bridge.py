# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: BLE001, SIM105
# The bridge loop: read every sensor adapter, write SLF/1 frames (or MQTT JSON) - board-agnostic.
# Hardware access lives in main.py; everything here runs under the MicroPython unix port.

import slf1
from sensors import SensorError

FW_VERSION = "1.0.0"


class Bridge:
    def __init__(self, device_id, adapters, out, ticks_ms, sleep_ms, interval_ms=10000, fw=FW_VERSION):
        self.encoder = slf1.Encoder(device_id, ticks_ms)
        self.adapters = adapters
        self.out = out  # anything with write(bytes): machine.UART, sys.stdout.buffer, a file
        self.sleep_ms = sleep_ms
        self.interval_ms = interval_ms
        self.fw = fw

    def units(self):
        seen = []
        for a in self.adapters:
            for key, unit in a.units:
                if (key, unit) not in seen:
                    seen.append((key, unit))
        return seen

    def _send(self, frames):
        for f in frames:
            self.out.write(f)
        flush = getattr(self.out, "flush", None)
        if flush:
            try:
                flush()
            except OSError:
                pass  # the unix port fsyncs on flush, which a tty refuses (EINVAL); the bytes are out

    def hello(self):
        self._send(self.encoder.info(self.fw, self.units()))

    def log(self, msg, lvl=None):
        self._send(self.encoder.log(msg, lvl))

    def collect(self):
        # Start every conversion, wait for the slowest, then read: one D frame per cycle.
        readings, errors = [], []
        wait = 0
        for a in self.adapters:
            try:
                a.start()
                wait = max(wait, a.conversion_ms)
            except Exception as exc:
                errors.append(_code(a, exc))
        if wait:
            self.sleep_ms(wait)
        for a in self.adapters:
            try:
                readings.extend(a.read())
            except Exception as exc:
                errors.append(_code(a, exc))
        return readings, errors

    def step(self):
        readings, errors = self.collect()
        for code, msg in errors:
            self._send(self.encoder.error(code, msg))
        self._send(self.encoder.data(readings))
        return readings

    def run(self, cycles=None):
        self.hello()
        n = 0
        while cycles is None or n < cycles:
            self.step()
            n += 1
            if cycles is None or n < cycles:
                self.sleep_ms(self.interval_ms)


def _code(adapter, exc):
    if isinstance(exc, SensorError):
        return exc.code, exc.detail or None
    return type(adapter).__name__.lower() + "_fail", str(exc) or type(exc).__name__
