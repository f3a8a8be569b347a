"""Per-gRPC-stream Arrow IPC state of the OTAP encoder: continuous IPC writers and cumulative dictionaries.

Owns (otap-wire.md §3): one never-closed Arrow IPC stream writer per OTAP table, drained after every
write so a payload carries only the bytes produced by that write; `schema_id` assignment from one
counter shared by every table of the stream (R1, R5); a new writer and a new `schema_id` whenever a
table's Arrow schema changes (R4); and the cumulative dictionaries whose growth pyarrow sends as delta
dictionary batches, with their index width (uint8 → uint16 → plain column, §3.5) as part of the schema.

Must never: write the end-of-stream marker (R6: writers are dropped, never closed), reuse a `schema_id`,
or let a dictionary index overflow its width (pitfall 7).
"""

from __future__ import annotations

import io
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa

DictMode = Literal["u8", "u16", "plain"]
# Largest number of dictionary values addressable by each index width. One less than the full range:
# the spec (§3.5) quotes 255 and 65 535, and staying under the maximum costs nothing.
_CAPACITY: dict[DictMode, int] = {"u8": 255, "u16": 65_535}
_INDEX_TYPE: dict[DictMode, pa.DataType] = {"u8": pa.uint8(), "u16": pa.uint16()}


class OtapEncodeError(ValueError):
    """A spooled batch that cannot be encoded as OTAP (wrong format, too many metrics for 16-bit ids,
    malformed attributes). The batch is at fault, not the stream: retrying it will fail again."""


def as_type(array: pa.Array, typ: pa.DataType) -> pa.Array:
    """`array` as `typ`, without a cast call when it already is (each pyarrow call costs ~10 µs)."""
    return array if array.type == typ else array.cast(typ)


class _Drain(io.RawIOBase):
    """Write-only sink that hands over, and forgets, what the IPC writer produced since the last take."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buf += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


class SchemaIds:
    """The stream-wide `schema_id` counter: "0", "1", ... like the Go producer (§3.4)."""

    def __init__(self) -> None:
        self._next = 0

    def new(self) -> str:
        sid = str(self._next)
        self._next += 1
        return sid


@dataclass(frozen=True, slots=True)
class Col:
    """One column of a table being built. An `optional` column is left out while it is all null and
    has never been sent on this IPC stream, so absent value kinds cost nothing yet the schema changes
    at most once per such column and stream."""

    name: str
    array: pa.Array
    nullable: bool = True
    optional: bool = False


class TableStream:
    """One OTAP table's continuous IPC stream inside one gRPC stream (strategy A of §3.3)."""

    def __init__(self, ids: SchemaIds, options: pa.ipc.IpcWriteOptions) -> None:
        self._ids = ids
        self._options = options
        self._drain = _Drain()
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._schema: pa.Schema | None = None
        self._sticky: set[str] = set()
        self.schema_id = ""

    def reset(self) -> None:
        """Forget the writer: the next write starts a new IPC stream under a new `schema_id` (R2, R8)."""
        # Dropped, not closed: close() would append the end-of-stream marker to our drain (R6).
        self._writer = None
        self._schema = None
        self._sticky = set()
        self._drain = _Drain()

    def write_columns(self, columns: Sequence[Col]) -> tuple[str, bytes]:
        """Like write(), for columns in table order; optional all-null columns are left out unless
        already part of this stream's schema."""
        sticky = self._sticky
        kept = [c for c in columns if not c.optional or c.name in sticky or c.array.null_count < len(c.array)]
        self._sticky.update(c.name for c in kept if c.optional)
        schema = pa.schema([pa.field(c.name, c.array.type, nullable=c.nullable) for c in kept])
        return self.write(pa.RecordBatch.from_arrays([c.array for c in kept], schema=schema))

    def write(self, batch: pa.RecordBatch) -> tuple[str, bytes]:
        """IPC bytes that continue (or start) this table's stream with `batch`, and their `schema_id`."""
        if self._writer is None or self._schema is None or not batch.schema.equals(self._schema):
            sticky = self._sticky
            self.reset()
            self._sticky = sticky
            self.schema_id = self._ids.new()
            self._schema = batch.schema
            self._writer = pa.ipc.new_stream(self._drain, batch.schema, options=self._options)
        try:
            self._writer.write_batch(batch)
        except BaseException:
            # Whatever reached the drain is now unsendable; the next write must start over (pitfall 3).
            self.reset()
            raise
        return self.schema_id, self._drain.take()


class DictColumn:
    """A cumulative dictionary for one string column of one table, grown over the whole IPC stream.

    Rows get indices into everything seen so far, so an unchanged dictionary is not re-sent and a grown
    one goes out as a delta. When the values no longer fit the index width the column widens (u8 → u16),
    which changes the schema; when even u16 is full it starts over with this batch's values only (pyarrow
    then sends a replacement dictionary); a batch that alone has more than 65 535 values makes the column
    plain utf8 for the rest of the stream, as the Go producer does. It also starts over once its values
    pass `max_bytes`, so long strings cannot make it (or the receiver's copy) grow without bound.
    """

    def __init__(self, start: DictMode, value_type: pa.DataType | None = None, max_bytes: int = 1 << 20) -> None:
        self._start: DictMode = start
        self._max_bytes = max_bytes
        self._type = value_type if value_type is not None else pa.string()
        self.mode: DictMode = start
        self._memo: dict[Hashable, int] = {}
        self._array: pa.Array = pa.array([], self._type)
        # Changes whenever the values or the mode do: equal generations mean encode() would give back
        # the same column for the same input, so callers may reuse one.
        self.generation = 0

    def reset(self) -> None:
        """Forget all values; the next batch builds the dictionary afresh (new stream, strategy B)."""
        self.generation += 1
        self.mode = self._start
        self._memo = {}
        self._array = pa.array([], self._type)

    @property
    def arrow_type(self) -> pa.DataType:
        if self.mode == "plain":
            return self._type
        return pa.dictionary(_INDEX_TYPE[self.mode], self._type)

    def encode(self, distinct: Sequence[object], codes: pa.Array) -> pa.Array:
        """The column for rows whose value is `distinct[codes[i]]`, or null where `codes[i]` is null."""
        if self.mode == "plain":
            return pa.array(list(distinct), self._type).take(codes)
        new = [v for v in dict.fromkeys(distinct) if v not in self._memo]
        if new:
            self.generation += 1
        count = len(self._memo) + len(new)
        too_big = bool(new) and self._array.nbytes + _approx_bytes(new) > self._max_bytes
        if count > _CAPACITY[self.mode] or too_big:
            if self.mode == "u8" and count <= _CAPACITY["u16"] and not too_big:
                self.mode = "u16"
            else:
                self._memo = {}
                self._array = pa.array([], self._type)
                new = list(dict.fromkeys(distinct))
                if len(new) > _CAPACITY["u16"]:
                    self.mode = "plain"
                    return pa.array(list(distinct), self._type).take(codes)
                self.mode = "u16" if len(new) > _CAPACITY["u8"] else self.mode
        if new:
            base = len(self._memo)
            for i, v in enumerate(new):
                self._memo[v] = base + i
            self._array = pa.concat_arrays([self._array, pa.array(new, self._type)])
        lookup = pa.array([self._memo[v] for v in distinct], _INDEX_TYPE[self.mode])
        return pa.DictionaryArray.from_arrays(lookup.take(codes), self._array)


def _approx_bytes(values: Sequence[object]) -> int:
    # Value bytes plus a 4-byte offset each; characters stand in for UTF-8 bytes (a bound, not a count).
    return sum(len(v) if isinstance(v, (str, bytes)) else 8 for v in values) + 4 * len(values)
