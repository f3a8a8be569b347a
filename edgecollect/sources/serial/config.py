"""The `[[sources.serial]]` config: one table per port (or glob of ports).

Fields are the TOML keys; config.py validates types from the hints, `__post_init__` checks meaning
(regexes compile, the csv header is set for csv framing, a regex pattern for regex framing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from edgecollect.configtypes import Duration, FieldError, Range

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

    port: str  # required; a path, a glob (/dev/serial/by-id/usb-*) or a pyserial URL (socket://h:p)
    baud: Annotated[int, Range(50, 12_000_000)] = 115200  # bit/s
    parity: Parity = "N"
    stopbits: StopBits = 1
    bytesize: Annotated[int, Range(5, 8)] = 8  # data bits
    framing: Framing = "slf1"
    header: tuple[str, ...] = ()  # csv column names; "@name" makes a column an attribute, "" skips it
    pattern: str = ""  # regex framing: named groups; numeric groups become metrics, attr_<k> attributes
    prefix: str = ""  # prepended to every metric name, e.g. "greenhouse."
    units: dict[str, str] = field(default_factory=dict)  # metric (or key) -> UCUM, unless an I frame said
    log_patterns: tuple[str, ...] = DEFAULT_LOG_PATTERNS  # non-data lines that become log records
    reopen_backoff_max: Annotated[Duration, Range("10ms", "1h")] = _BACKOFF_MAX  # cap of the jittered reopen backoff
    # Bytes from start to \n; 0 = framing default (255 for slf1/nmea, 4096 others).
    max_line: Annotated[int, Range(0, 1_048_576)] = 0
    # How often a blocked read checks for shutdown.
    read_timeout: Annotated[Duration, Range("1ms", "5s")] = _READ_TIMEOUT
    max_series: Annotated[int, Range(1, 1_000_000)] = 5_000  # this source's share of agent.max_series

    def __post_init__(self) -> None:
        # Ranges of single values are declared on the fields and checked when the file is loaded;
        # these repeat the ones that matter for direct construction, and add the cross-field rules.
        if not self.port:
            raise FieldError("port", "a device path, glob or URL such as /dev/ttyUSB0")
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

    def line_limit(self) -> int:
        if self.max_line:
            return self.max_line
        return DEFAULT_MAX_LINE.get(self.framing, TEXT_MAX_LINE)


def _compile(key: tuple[str | int, ...], pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise FieldError(key, f"a Python regular expression ({exc})") from exc
