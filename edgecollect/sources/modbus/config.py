"""The `[[sources.modbus]]` config: one table per bus (a serial port for RTU, or a TCP endpoint).

Fields are the TOML keys; config.py checks types from the hints and `__post_init__` checks meaning:
address ranges, type/kind combinations, `bit` only on integer registers, overlapping spans within
one device, one transport per bus. Nothing here imports pymodbus: `check-config` works without it.

Conventions (Telegraf's and Home Assistant's): addresses are 0-based protocol addresses (not
40001-style), value = raw × scale + offset, `bit` counts from the least significant bit, and the
serial keys are the serial source's (`port`, `baud`, `parity`, `stopbits`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

from edgecollect.configtypes import Duration, Range

RegisterKind = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"]
Order = Literal["big", "little"]
MetricKind = Literal["gauge", "cumulative"]
Parity = Literal["N", "E", "O"]
StopBits = Literal[1, 2]

# Registers (16-bit words) each type spans, and the struct code of its big-endian bytes.
WORDS: dict[str, int] = {
    "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "int64": 4, "uint64": 4,
    "float32": 2, "float64": 4, "bool": 1,
}
INTEGER_TYPES = frozenset({"int16", "uint16", "int32", "uint32", "int64", "uint64"})
BIT_KINDS = frozenset({"coil", "discrete"})
# Modbus application protocol v1.1b3 §6.1-6.4: the most one read may ask for.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000
MAX_ADDRESS = 0xFFFF

_TEN_SECONDS = Duration(10.0)
_ONE_SECOND = Duration(1.0)
_FIVE_MINUTES = Duration(300.0)
_METRIC_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$")
_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]+))(?::(?P<port>\d{1,5}))?$")


@dataclass(frozen=True, slots=True)
class RegisterConfig:
    """One value read from a device: where it lives, how its words are laid out, what it means."""

    metric: str  # required; metric name, e.g. "hw.power" or "meter.power.active"
    # required; 0-based protocol address (register 40013 in a manual is holding 12)
    address: Annotated[int, Range(0, 65535)]
    kind: RegisterKind = "holding"  # holding (fc 3), input (fc 4), coil (fc 1), discrete (fc 2)
    type: DataType | None = None  # unset: uint16 for holding/input, bool for coil/discrete
    # one bit of an integer register, 0 = least significant; value 0 or 1
    bit: Annotated[int | None, Range(0, 63)] = None
    word_order: Order = "big"  # order of the 16-bit words of a 32/64-bit value ("little": CDAB)
    byte_order: Order = "big"  # order of the two bytes within each word ("little": BADC)
    scale: Annotated[float, Range(-10**12, 10**12)] = 1.0  # value = raw × scale + offset
    offset: Annotated[float, Range(-10**12, 10**12)] = 0.0
    unit: str = "1"  # UCUM, e.g. "W", "kW.h", "Cel", "%", "L/min"
    metric_kind: MetricKind = "gauge"  # cumulative for meter totals (energy, volume)
    attributes: dict[str, str] = field(default_factory=dict)  # e.g. { "electrical.phase" = "L1" }

    def __post_init__(self) -> None:
        if not _METRIC_NAME.match(self.metric):
            raise ValueError("metric must be a metric name such as power.active (letters, digits, _ . - /)")
        if not 0 <= self.address <= MAX_ADDRESS:
            raise ValueError(f"address must be a 0-based protocol address 0..{MAX_ADDRESS}")
        if self.kind in BIT_KINDS and self.value_type != "bool":
            raise ValueError(f"type must be bool (or unset) for a {self.kind}, which holds one bit")
        if self.address + self.words - 1 > MAX_ADDRESS:
            last = MAX_ADDRESS + 1 - self.words
            raise ValueError(f"address must be at most {last}, to leave room for the {self.words} registers")
        if self.bit is not None:
            if self.value_type not in INTEGER_TYPES:
                raise ValueError(f"bit must be on an integer type (int16 .. uint64), not {self.value_type}")
            width = 16 * self.words
            if not 0 <= self.bit < width:
                raise ValueError(f"bit must be 0..{width - 1} for a {self.value_type}")
        if (self.bit is not None or self.value_type == "bool") and (self.scale != 1.0 or self.offset != 0.0):
            raise ValueError("scale must be 1 and offset 0 for a bit or bool value, which is 0 or 1")
        if self.scale == 0.0:
            raise ValueError("scale must be non-zero")

    @property
    def value_type(self) -> str:
        if self.type is not None:
            return self.type
        return "bool" if self.kind in BIT_KINDS else "uint16"

    @property
    def words(self) -> int:
        """Registers (or, for coils and discrete inputs, bits) this value spans."""
        return 1 if self.kind in BIT_KINDS else WORDS[self.value_type]


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One unit id on the bus and what to read from it."""

    # required; unit id (slave address): 1..247 on RTU; 0..255 through a TCP gateway
    unit: Annotated[int, Range(0, 255)]
    registers: tuple[RegisterConfig, ...] = ()  # the register map, in any order
    name: str = ""  # optional device name, the modbus.device attribute of its series
    interval: Annotated[Duration | None, Range("100ms", "1d")] = None  # unset: the source's interval
    max_gap: Annotated[int | None, Range(0, 124)] = None  # unset: the source's max_gap

    def __post_init__(self) -> None:
        if not 0 <= self.unit <= 255:
            raise ValueError("unit must be a unit id 0..255 (1..247 on a serial bus)")
        if not self.registers:
            raise ValueError("registers must be a non-empty array of { metric = ..., address = ... }")
        if self.interval is not None and self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.max_gap is not None and not 0 <= self.max_gap <= MAX_REGISTERS_PER_READ:
            raise ValueError(f"max_gap must be 0..{MAX_REGISTERS_PER_READ} registers")
        _check_overlaps(self.registers)


def _check_overlaps(registers: tuple[RegisterConfig, ...]) -> None:
    """Two values may share registers only as bit fields of the same integer (a status word)."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for reg in registers:
        key = (reg.metric, tuple(sorted(reg.attributes.items())))
        if key in seen:
            raise ValueError(f"registers must be one per metric and attributes in a device; {reg.metric!r} repeats")
        seen.add(key)
    by_kind: dict[str, list[RegisterConfig]] = {}
    for reg in registers:
        by_kind.setdefault(reg.kind, []).append(reg)
    for kind, regs in by_kind.items():
        regs.sort(key=lambda r: (r.address, -r.words))
        a = regs[0]  # of the values so far, the one reaching furthest
        for b in regs[1:]:
            if b.address >= a.address + a.words:
                a = b
                continue
            same_word = a.address == b.address and a.value_type == b.value_type
            if same_word and a.bit is not None and b.bit is not None and a.bit != b.bit:
                continue
            raise ValueError(
                f"registers must be without overlaps: {a.metric!r} ({kind} {a.address}, {a.words} registers) "
                f"and {b.metric!r} ({kind} {b.address}) share registers; only different bits of one "
                "integer register may"
            )


@dataclass(frozen=True, slots=True)
class ModbusConfig:
    """One bus: a TCP endpoint, or a serial port (RTU) shared by many unit ids."""

    name: str  # required; the source's identity (source = "modbus.<name>") and its modbus.bus attribute
    endpoint: str = ""  # Modbus TCP: "host:port" (port 502 when omitted); or set port for RTU
    port: str = ""  # Modbus RTU: serial device, e.g. /dev/ttyUSB0 or /dev/serial/by-id/...
    baud: Annotated[int, Range(50, 12_000_000)] = 9600  # bit/s (RTU)
    parity: Parity = "N"  # RTU; the Modbus spec's default is E, most meters ship with N
    stopbits: StopBits = 1  # RTU
    bytesize: Annotated[int, Range(5, 8)] = 8  # RTU data bits
    timeout: Annotated[Duration, Range("10ms", "1m")] = _ONE_SECOND  # s; one request's wait for its response
    # s; how often each device is read (a device may override)
    interval: Annotated[Duration, Range("100ms", "1d")] = _TEN_SECONDS
    max_gap: Annotated[int, Range(0, 124)] = 8  # registers; unread registers one request may span to save a round trip
    # s; longest wait before a silent device is tried again
    backoff_max: Annotated[Duration, Range("1s", "1d")] = _FIVE_MINUTES
    devices: tuple[DeviceConfig, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", self.name):
            raise ValueError("name must be a short identifier (letters, digits, _ . -), e.g. meter")
        if bool(self.endpoint) == bool(self.port):
            raise ValueError('endpoint must be set for Modbus TCP ("host:502"), or port for RTU, not both')
        if self.endpoint:
            tcp_address(self.endpoint)
        if self.baud <= 0:
            raise ValueError("baud must be a positive bit rate")
        if not 7 <= self.bytesize <= 8:
            raise ValueError("bytesize must be 7 or 8 data bits")
        if self.timeout <= 0 or self.interval <= 0 or self.backoff_max <= 0:
            raise ValueError("interval must be positive, and so must timeout and backoff_max")
        if not 0 <= self.max_gap <= MAX_REGISTERS_PER_READ:
            raise ValueError(f"max_gap must be 0..{MAX_REGISTERS_PER_READ} registers")
        if not self.devices:
            raise ValueError("devices must be at least one [[sources.modbus.devices]] table")
        units = [d.unit for d in self.devices]
        if len(set(units)) != len(units):
            raise ValueError("devices must be distinct unit ids on one bus")

    @property
    def transport(self) -> Literal["tcp", "rtu"]:
        return "tcp" if self.endpoint else "rtu"


def tcp_address(endpoint: str) -> tuple[str, int]:
    """("host", port) of "host:port", "[v6]:port" or "host" (502)."""
    m = _ENDPOINT.match(endpoint.strip())
    port = int(m.group("port")) if m and m.group("port") else 502
    if m is None or not 0 < port < 65536:
        raise ValueError(f'endpoint must be "host:port" such as "192.168.1.20:502", not {endpoint!r}')
    return (m.group("v6") or m.group("host"), port)
