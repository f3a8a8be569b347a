"""Which requests read a device's register map, and how their words become values. Pure, no I/O.

Request planning. Values of one kind are sorted by address and merged into one read while the next
value starts at most `max_gap` unread registers after the current read ends and the read stays
within the protocol's limit (125 registers, 2000 coils or discrete inputs). Why a gap is worth
bridging: on RTU at 9600 baud a round trip costs ~8 request + 5 response framing bytes (~14 ms)
plus the two 3.5-character silences and the device's turnaround (typically 5-50 ms), while an
unread register costs 2 bytes (~2 ms); so spanning up to ~8 registers is cheaper than a second
request, and TCP (per-request latency, tiny bytes) gains even more. The default is 8; 0 reads only
adjacent values together. A device that answers "illegal address" to a read spanning a gap
(some maps have holes) gets its reads re-planned without gaps (source.py does that).

Decoding. `word_order` orders the 16-bit words of a wide value, `byte_order` the two bytes inside
each word: big/big is ABCD (the Modbus default), little/big CDAB, big/little BADC, little/little
DCBA. value = raw × scale + offset; integers stay integers when scale is 1 and offset 0 (a uint64
above the int64 range becomes a float).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgecollect.sources.modbus.config import (
    BIT_KINDS,
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    RegisterConfig,
)

_STRUCT = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q", "uint64": ">Q",
    "float32": ">f", "float64": ">d", "bool": ">H",
}
KIND_ORDER = ("holding", "input", "coil", "discrete")
INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class Read:
    """One request: `count` registers (or bits) of `kind` from `address`, and the values in it."""

    kind: str
    address: int
    count: int
    registers: tuple[RegisterConfig, ...]

    @property
    def has_gaps(self) -> bool:
        covered: set[int] = set()
        for reg in self.registers:
            covered.update(range(reg.address, reg.address + reg.words))
        return len(covered) < self.count


def plan(registers: tuple[RegisterConfig, ...], max_gap: int) -> tuple[Read, ...]:
    """The fewest reads covering every register, under the protocol limit and the gap rule."""
    reads: list[Read] = []
    for kind in KIND_ORDER:
        regs = sorted((r for r in registers if r.kind == kind), key=lambda r: (r.address, r.words))
        limit = MAX_BITS_PER_READ if kind in BIT_KINDS else MAX_REGISTERS_PER_READ
        group: list[RegisterConfig] = []
        start = end = 0  # [start, end) of the current read
        for reg in regs:
            reg_end = reg.address + reg.words
            if group and reg.address - end <= max_gap and max(end, reg_end) - start <= limit:
                group.append(reg)
                end = max(end, reg_end)
                continue
            if group:
                reads.append(Read(kind, start, end - start, tuple(group)))
            group, start, end = [reg], reg.address, reg_end
        if group:
            reads.append(Read(kind, start, end - start, tuple(group)))
    return tuple(reads)


def words_to_bytes(words: list[int], word_order: str, byte_order: str) -> bytes:
    """The value's bytes in big-endian order, whatever order the device keeps its words and bytes in."""
    ordered = words[::-1] if word_order == "little" else words
    out = bytearray()
    for word in ordered:
        hi, lo = (word >> 8) & 0xFF, word & 0xFF
        out += bytes((lo, hi)) if byte_order == "little" else bytes((hi, lo))
    return bytes(out)


def decode(reg: RegisterConfig, values: list[int] | list[bool], base: int) -> int | float:
    """One value from the words (or bits) of a read that started at `base`."""
    offset = reg.address - base
    if reg.kind in BIT_KINDS:
        return 1 if values[offset] else 0
    words = [int(w) for w in values[offset : offset + reg.words]]
    raw = struct.unpack(_STRUCT[reg.value_type], words_to_bytes(words, reg.word_order, reg.byte_order))[0]
    if reg.bit is not None:
        return (int(raw) >> reg.bit) & 1
    if reg.value_type == "bool":
        return 1 if raw else 0
    if reg.scale == 1.0 and reg.offset == 0.0:
        # The ring's integer column is int64: a uint64 beyond it travels as a float (53-bit exact).
        return raw if raw <= INT64_MAX else float(raw)
    return float(raw) * reg.scale + reg.offset


def split_gaps(read: Read) -> tuple[Read, ...]:
    """The same values read without spanning unread registers (for devices whose maps have holes)."""
    return plan(read.registers, 0)
