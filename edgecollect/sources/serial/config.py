"""The `[[sources.serial]]` config: one table per port (or glob of ports).

Fields are the TOML keys; config.py validates types from the hints, `__post_init__` checks meaning
(regexes compile, the csv header is set for csv framing, a regex pattern for regex framing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from edgecollect.configtypes import Duration, FieldError, Key, KeyDocs, Range
from edgecollect.sources.registry import check_name, slug

Framing = Literal["slf1", "nmea", "csv", "kv", "jsonl", "influx", "regex"]
Parity = Literal["N", "E", "O"]
StopBits = Literal[1, 2]  # 1.5 stop bits only exist with 5 data bits; nobody uses them

# Lines that are not data but tell an operator something went wrong or the board restarted.
# ESP32 boot ROM ("ets Jun  8 2016", "rst:0x1 (POWERON_RESET)"), panics ("Guru Meditation Error",
# "Backtrace: 0x..."), MicroPython tracebacks and banners, AVR/Arduino asserts.
DEFAULT_LOG_PATTERNS: tuple[str, ...] = (
    r"^Traceback \(most recent call last\)",
    r"^\s+File \"",
    r"^[A-Za-z_][A-Za-z0-9_.]*(Error|Exception)(: |$)",
    r"Guru Meditation Error",
    r"^Backtrace: ?0x",
    r"^rst:0x[0-9a-fA-F]+ ",
    r"^ets [A-Z][a-z]{2} ",
    r"^(ESP-ROM:|Brownout detector)",
    r"^MicroPython v\d",
    r"^(abort\(\) was called|assert(ion)? failed)",
)

# Default longest line per framing: SLF/1 fixes 255 bytes; NMEA allows 82 but receivers with
# proprietary sentences go longer; the line formats are free-form text.
DEFAULT_MAX_LINE: dict[str, int] = {"slf1": 255, "nmea": 255}
TEXT_MAX_LINE = 4096
_BACKOFF_MAX = Duration(2.0)
_READ_TIMEOUT = Duration(0.2)


@dataclass(frozen=True, slots=True)
class SerialConfig:
    """One port. A glob opens its first match (sorted) and is resolved again on every reopen, so a
    board that comes back under a new ttyUSBn is found; a URL is anything pyserial's
    serial_for_url understands (socket://host:port for ser2net, rfc2217://...)."""

    port: str
    name: str = ""
    baud: Annotated[int, Range(50, 12_000_000)] = 115200
    parity: Parity = "N"
    stopbits: StopBits = 1
    bytesize: Annotated[int, Range(5, 8)] = 8
    framing: Framing = "slf1"
    header: tuple[str, ...] = ()
    pattern: str = ""
    prefix: str = ""
    units: dict[str, str] = field(default_factory=dict)
    log_patterns: tuple[str, ...] = DEFAULT_LOG_PATTERNS
    reopen_backoff_max: Annotated[Duration, Range("10ms", "1h")] = _BACKOFF_MAX
    max_line: Annotated[int, Range(0, 1_048_576)] = 0
    read_timeout: Annotated[Duration, Range("1ms", "5s")] = _READ_TIMEOUT
    max_series: Annotated[int, Range(1, 1_000_000)] = 5_000

    KEY_DOCS: ClassVar[KeyDocs] = {
        "port": Key("The device: a path, a glob (/dev/serial/by-id/usb-*, its first match, looked up again at "
        "every reopen) or a pyserial URL (socket://host:port for ser2net, rfc2217://...).",
        example='"/dev/ttyUSB0"'),
        "name": Key("Names this source: its counters and status entry are those of source serial.<name>. "
        "Letters, digits, _ . -; unique among all sources. Empty: the port's last path part (ttyUSB0, "
        "usb-FTDI_...) or its URL (socket-host-4001), which stays the same when the [[sources.serial]] "
        "tables are reordered.", example='"greenhouse"'),
        "baud": "Line speed in bit/s.",
        "parity": Key("Parity bit of each character.", choices={"N": "none", "E": "even", "O": "odd"}),
        "stopbits": Key("Stop bits after each character.", choices={1: "one", 2: "two"}),
        "bytesize": "Data bits per character.",
        "framing": Key("What one line of the device's output looks like.", choices={
            "slf1": "SLF/1 sensor line frames, with sequence numbers and a checksum",
            "nmea": "NMEA 0183 GPS sentences (GGA, RMC, GSA)",
            "csv": "comma-separated values, named by header",
            "kv": "key=value pairs: temp=21.5 hum=40",
            "jsonl": 'one JSON object per line: {"temp": 21.5}',
            "influx": "InfluxDB line protocol",
            "regex": "any text, read with the named groups of pattern"}),
        "header": 'csv: the column names; "@name" makes a column an attribute, "" skips it.',
        "pattern": "regex: a Python regular expression; numeric named groups become metrics, groups named "
        "attr_<name> attributes.",
        "prefix": 'Put before every metric name, e.g. "greenhouse.".',
        "units": 'Unit of a metric (or key) in UCUM ({ temp = "Cel" }), unless the device says it (SLF/1).',
        "log_patterns": "Lines matching one of these regular expressions are kept as log records (crash "
        "traces, boot banners), not counted as bad data.",
        "reopen_backoff_max": "Longest wait between attempts to reopen a missing or failed port.",
        "max_line": "Longest line in bytes; longer ones are refused and counted. 0: the framing's own limit "
        "(255 for slf1 and nmea, 4096 for the others).",
        "read_timeout": "How often a blocked read checks whether the agent is stopping.",
        "max_series": "This source's share of agent.max_series.",
    }

    def __post_init__(self) -> None:
        # Ranges of single values are declared on the fields and checked when the file is loaded;
        # these repeat the ones that matter for direct construction, and add the cross-field rules.
        if not self.port:
            raise FieldError("port", "a device path, glob or URL such as /dev/ttyUSB0")
        check_name(self.name)
        if self.baud <= 0:
            raise FieldError("baud", "a positive bit rate")
        if not 5 <= self.bytesize <= 8:
            raise FieldError("bytesize", "5..8 data bits")
        if self.max_line < 0 or self.max_line > 1 << 20:
            raise FieldError("max_line", "0 (framing default) to 1048576")
        if self.reopen_backoff_max <= 0:
            raise FieldError("reopen_backoff_max", "a positive duration")
        if self.read_timeout <= 0:
            raise FieldError("read_timeout", "a positive duration")
        if self.framing == "csv" and not self.header:
            raise FieldError("header", 'the column names csv framing needs, e.g. header = ["temp", "hum"]')
        if self.framing == "regex":
            if not self.pattern:
                raise FieldError("pattern", "a pattern with named groups (regex framing needs one)")
            _compile(("pattern",), self.pattern)
            if not re.compile(self.pattern).groupindex:
                raise FieldError("pattern", "at least one named group, e.g. (?P<temp>[-0-9.]+)")
        for i, pat in enumerate(self.log_patterns):
            _compile(("log_patterns", i), pat)

    def default_name(self) -> str:
        """From the device, not the table's place in the file: "ttyUSB0", "socket-10.0.0.5-4001"."""
        scheme, sep, rest = self.port.partition("://")
        return slug(f"{scheme}-{rest}" if sep else self.port.rstrip("/").rpartition("/")[2])

    def line_limit(self) -> int:
        if self.max_line:
            return self.max_line
        return DEFAULT_MAX_LINE.get(self.framing, TEXT_MAX_LINE)


def _compile(key: tuple[str | int, ...], pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise FieldError(key, f"a Python regular expression ({exc})") from exc
