"""The framings a serial port can speak, one module each, and the factory that picks one.

`make_parser(cfg, on_event)` returns an object with `parse(line, time_ns) -> Parsed`; only SLF/1
keeps state (the board's session) and reports events through `on_event`.
"""

from __future__ import annotations

from collections.abc import Callable

from edgecollect.sources.serial.config import SerialConfig
from edgecollect.sources.serial.framing._common import OUTCOMES, LineParser
from edgecollect.sources.serial.framing.csv import CsvParser
from edgecollect.sources.serial.framing.influx import InfluxParser
from edgecollect.sources.serial.framing.jsonl import JsonlParser
from edgecollect.sources.serial.framing.kv import KvParser
from edgecollect.sources.serial.framing.nmea import NmeaParser
from edgecollect.sources.serial.framing.regex import RegexParser
from edgecollect.sources.serial.framing.slf1 import Slf1Parser

__all__ = ["OUTCOMES", "SLF1_EVENTS", "LineParser", "make_parser"]

SLF1_EVENTS: tuple[str, ...] = ("lost_frames", "duplicates", "reboots", "board_swaps")

# Framings whose lines start with `$` and carry a checksum: the line splitter may resync on `$`.
START_BYTE: dict[str, int] = {"slf1": 0x24, "nmea": 0x24}


def make_parser(cfg: SerialConfig, on_event: Callable[[str, int], None] | None = None) -> LineParser:
    units = dict(cfg.units)
    if cfg.framing == "slf1":
        return Slf1Parser(cfg.prefix, units, cfg.port, on_event)
    if cfg.framing == "nmea":
        return NmeaParser(cfg.prefix, units)
    if cfg.framing == "csv":
        return CsvParser(cfg.header, cfg.prefix, units)
    if cfg.framing == "kv":
        return KvParser(cfg.prefix, units)
    if cfg.framing == "jsonl":
        return JsonlParser(cfg.prefix, units)
    if cfg.framing == "influx":
        return InfluxParser(cfg.prefix, units)
    return RegexParser(cfg.pattern, cfg.prefix, units)
