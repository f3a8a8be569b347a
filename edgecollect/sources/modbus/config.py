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
from typing import Annotated, ClassVar, Literal

from edgecollect.configtypes import Duration, Key, KeyDocs, Range

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

    metric: str
    address: Annotated[int, Range(0, 65535)]
    kind: RegisterKind = "holding"
    type: DataType | None = None
    bit: Annotated[int | None, Range(0, 63)] = None
    word_order: Order = "big"
    byte_order: Order = "big"
    scale: Annotated[float, Range(-10**12, 10**12)] = 1.0
    offset: Annotated[float, Range(-10**12, 10**12)] = 0.0
    unit: str = "1"
    metric_kind: MetricKind = "gauge"
    attributes: dict[str, str] = field(default_factory=dict)

    KEY_DOCS: ClassVar[KeyDocs] = {
        "metric": Key("The metric name this value is reported as.", example='"meter.power.active"'),
        "address": Key("Where the value starts: the 0-based protocol address, not the 40001-style number "
        "of some manuals (holding register 40013 is address 12).", example="12"),
        "kind": Key("Which of the device's four tables the value is read from.", choices={
            "holding": "holding registers (function 3): 16-bit words, most meters' values",
            "input": "input registers (function 4): read-only 16-bit words",
            "coil": "coils (function 1): one bit each",
            "discrete": "discrete inputs (function 2): read-only bits"}),
        "type": Key("How the register words are read. Not set: uint16 for holding and input registers, "
        "bool for coils and discrete inputs.", example='"int32"', choices={
            "int16": "signed, 1 register", "uint16": "unsigned, 1 register",
            "int32": "signed, 2 registers", "uint32": "unsigned, 2 registers",
            "int64": "signed, 4 registers", "uint64": "unsigned, 4 registers",
            "float32": "IEEE 754 single precision, 2 registers",
            "float64": "IEEE 754 double precision, 4 registers",
            "bool": "0 or 1: a coil or discrete input, or a register that is zero or not, 1 register"}),
        "bit": Key("Report only this bit of an integer register, 0 being the least significant: the value "
        "is 0 or 1 (a status word's flags, each its own metric). Not set: the whole value.", example="3"),
        "word_order": Key("Order of the 16-bit words of a 32- or 64-bit value.", choices={
            "big": "most significant word first (ABCD), the Modbus convention",
            "little": "least significant word first (CDAB), as many meters send floats"}),
        "byte_order": Key("Order of the two bytes within each word.", choices={
            "big": "most significant byte first, the Modbus convention",
            "little": "swapped (BADC)"}),
        "scale": "The reported value is the raw value × scale + offset (e.g. 0.1 for a register in tenths).",
        "offset": "Added after scale.",
        "unit": 'Unit of the value in UCUM: "W", "kW.h", "Cel", "%", "L/min"; "1" for a plain number.',
        "metric_kind": Key("What the value is.", choices={
            "gauge": "a reading at that moment (power, temperature, a state)",
            "cumulative": "a total that only grows (energy or volume meters), so rates can be computed"}),
        "attributes": 'Attributes of this value\'s series, e.g. { "electrical.phase" = "L1" }.',
    }

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

    unit: Annotated[int, Range(0, 255)]
    registers: tuple[RegisterConfig, ...] = ()
    name: str = ""
    interval: Annotated[Duration | None, Range("100ms", "1d")] = None
    max_gap: Annotated[int | None, Range(0, 124)] = None

    KEY_DOCS: ClassVar[KeyDocs] = {
        "unit": Key("The device's unit id (slave address): 1 to 247 on a serial bus; through a TCP gateway "
        "whatever it expects, 0 to 255.", example="1"),
        "registers": "The values read from this device, one entry [[sources.modbus.devices.registers]] each, "
        "in any order; neighbouring ones are read together.",
        "name": "Names the device: its series carry it as the modbus.device attribute. Empty: no attribute.",
        "interval": Key("How often this device is read. Not set: the source's interval.", example='"1s"'),
        "max_gap": Key("This device's max_gap (some devices refuse reads across unmapped registers: 0). "
                       "Not set: the source's.", example="0"),
    }

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

    name: str
    endpoint: str = ""
    port: str = ""
    baud: Annotated[int, Range(50, 12_000_000)] = 9600
    parity: Parity = "N"
    stopbits: StopBits = 1
    bytesize: Annotated[int, Range(5, 8)] = 8
    timeout: Annotated[Duration, Range("10ms", "1m")] = _ONE_SECOND
    interval: Annotated[Duration, Range("100ms", "1d")] = _TEN_SECONDS
    max_gap: Annotated[int, Range(0, 124)] = 8
    backoff_max: Annotated[Duration, Range("1s", "1d")] = _FIVE_MINUTES
    devices: tuple[DeviceConfig, ...] = field(default_factory=tuple)

    KEY_DOCS: ClassVar[KeyDocs] = {
        "name": Key("Names this bus: its counters and status entry are those of source modbus.<name> and its "
        "series carry the modbus.bus attribute. Letters, digits, _ . -; unique among all sources.",
        example='"meter"'),
        "endpoint": Key('Modbus TCP: the device or gateway as "host:port" (port 502 when left out). Set '
        "either this or port.", example='"192.168.1.20:502"'),
        "port": "Modbus RTU: the serial device the bus is on, e.g. /dev/ttyUSB0 or /dev/serial/by-id/... Set "
        "either this or endpoint.",
        "baud": "RTU: line speed in bit/s.",
        "parity": Key("RTU: parity bit of each character (the Modbus standard says even, most meters ship "
        "with none).", choices={"N": "none", "E": "even", "O": "odd"}),
        "stopbits": Key("RTU: stop bits after each character.", choices={1: "one", 2: "two"}),
        "bytesize": "RTU: data bits per character (7 or 8).",
        "timeout": "How long one request waits for the device to answer.",
        "interval": "How often each device is read, unless the device sets its own.",
        "max_gap": "Unread registers one request may span to fetch two values in one round trip instead of "
        "two; 0: never read registers that are not mapped.",
        "backoff_max": "A device that does not answer is skipped for a time that doubles with each silent "
        "poll, up to this, so it costs the bus one timeout per such period instead of one per request.",
        "devices": "The devices on this bus, one entry [[sources.modbus.devices]] each (unit ids distinct).",
    }

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
