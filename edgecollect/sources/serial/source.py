"""SerialSource: one thread owning one serial port (path, glob or URL) for the agent's lifetime.

Owns the open/read/reopen loop (hot-plug: a vanished device is closed, retried with capped
jittered backoff, and read again when it is back; absent at boot never blocks start), the line
splitter, the framing parser, and the per-port counters:

    edgecollect.serial.frames{source, outcome}  outcome in ok, crc, no_start, no_crc, overflow,
                                                version, header, field, value
    edgecollect.serial.lost_frames / duplicates / reboots / board_swaps{source}   (SLF/1 sessions)
    edgecollect.serial.log_lines{source}        device lines turned into log records
    edgecollect.serial.port_opens{source}, edgecollect.serial.port_errors{source, reason}
                                                reason in absent, open, read, internal

Lines that fail the framing but match `log_patterns` (tracebacks, panics, boot banners) become log
records instead of rejects. No parser exception can end the thread: one escaping is counted as
`field` and logged, and the loop goes on.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from edgecollect.errors import SourceFault
from edgecollect.model import LogRecord, Parsed, Point, attrs
from edgecollect.sources.base import Backoff, SourceContext
from edgecollect.sources.serial.config import SerialConfig
from edgecollect.sources.serial.framing import OUTCOMES, SLF1_EVENTS, START_BYTE, make_parser
from edgecollect.sources.serial.port import (
    LineSplitter,
    close_port,
    open_port,
    read_chunk,
    resolve_port,
)

log = logging.getLogger("edgecollect.serial")

FIRST_RETRY_S = 0.1
_ERROR_WORDS = re.compile(r"error|exception|traceback|guru|panic|abort|assert|backtrace", re.IGNORECASE)


class SerialSource:
    def __init__(self, cfg: SerialConfig, ctx: SourceContext) -> None:
        self.name = ctx.name
        self._cfg = cfg
        self._ctx = ctx
        self._frames = ctx.counter("frames", "outcome")
        for outcome in OUTCOMES:
            self._frames.inc(outcome, 0)  # present from the start so status shows every outcome
        self._events = {name: ctx.counter(name) for name in SLF1_EVENTS}
        self._log_lines = ctx.counter("log_lines")
        self._opens = ctx.counter("port_opens")
        self._port_errors = ctx.counter("port_errors", "reason")
        self._parser = make_parser(cfg, self._on_event)
        self._log_patterns = tuple(re.compile(p.encode("utf-8")) for p in cfg.log_patterns)
        self._port_attrs = attrs({"serial.port": cfg.port})

    def _on_event(self, name: str, n: int) -> None:
        self._events[name].inc(n=n)

    def run(self) -> None:
        backoff = self._ctx.backoff(FIRST_RETRY_S, self._cfg.reopen_backoff_max)
        reported_absent = False
        while not self._ctx.stop.is_set():
            device = resolve_port(self._cfg.port)
            if device is None:
                self._port_errors.inc("absent")
                if not reported_absent:
                    self._device_log("WARN", f"serial port {self._cfg.port} not present; waiting for it")
                    reported_absent = True
                self._ctx.wait(backoff.next())
                continue
            try:
                port = open_port(self._cfg, device)
            except SourceFault as exc:
                self._port_errors.inc("open")
                log.debug("%s: %s", self.name, exc)
                self._ctx.wait(backoff.next())
                continue
            reported_absent = False
            self._opens.inc()
            try:
                self._read(port, backoff)
            except SourceFault as exc:
                self._port_errors.inc("read")
                self._device_log("WARN", f"serial port {device} lost: {exc}")
            except Exception:  # a bug must not end the port's thread: count, log, reopen
                self._port_errors.inc("internal")
                log.exception("%s: unexpected error reading %s", self.name, device)
            finally:
                close_port(port)
            self._ctx.wait(backoff.next())

    def _read(self, port: Any, backoff: Backoff) -> None:
        splitter = LineSplitter(self._cfg.line_limit(), START_BYTE.get(self._cfg.framing))
        healthy = False
        while not self._ctx.stop.is_set():
            data = read_chunk(port)
            if not data:
                continue
            if not healthy:
                backoff.reset()
                healthy = True
            self.feed(splitter, data)

    def feed(self, splitter: LineSplitter, data: bytes) -> None:
        """Parse every complete line in `data` and emit the results (public for benchmarks)."""
        before = splitter.overflows
        lines = splitter.feed(data)
        if splitter.overflows != before:
            self._frames.inc("overflow", splitter.overflows - before)
        if not lines:
            return
        now = time.time_ns()
        points: list[Point] = []
        frames = self._frames
        for line in lines:
            try:
                parsed = self._parser.parse(line, now)
            except Exception:  # a parser bug must not kill the port's thread
                log.exception("%s: parser failed on %r", self.name, line[:64])
                parsed = Parsed(outcome="field")
            outcome = parsed.outcome
            if outcome != "ok" and self._as_log(line, now):
                continue
            frames.inc(outcome)
            if outcome != "ok":
                self._log_reject(outcome, line)
                continue
            if parsed.points:
                points.extend(parsed.points)
            for record in parsed.logs:
                self._ctx.emit_log(record)
        if points:
            self._ctx.emit(points)

    def _as_log(self, line: bytes, now: int) -> bool:
        for pattern in self._log_patterns:
            if pattern.search(line):
                text = line.decode("utf-8", "backslashreplace")
                level, number = ("ERROR", 17) if _ERROR_WORDS.search(text) else ("INFO", 9)
                self._ctx.emit_log(LogRecord(now, text, level, number, self._port_attrs))
                self._log_lines.inc()
                return True
        return False

    def _log_reject(self, outcome: str, line: bytes) -> None:
        self._ctx.event(outcome, "%s: rejected (%s): %r", self.name, outcome, line[:48], level=logging.DEBUG)

    def _device_log(self, level: str, body: str) -> None:
        number = 13 if level == "WARN" else 9
        self._ctx.emit_log(LogRecord(time.time_ns(), body, level, number, self._port_attrs))
