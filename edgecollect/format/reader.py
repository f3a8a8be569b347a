"""Reading and writing one spooled batch: its Arrow schema, its IPC bytes, and a typed view of it.

The names come from the contract (`edgecollect.format`); this module adds what needs pyarrow: the
two schemas, the IPC options of a spooled batch (zstd buffer compression, one record batch per
stream), and `BatchView`, which exporters, spool tools, coalescing, downsampling and clock repair
use instead of reading schema metadata and columns by raw key.

Must never: change a byte of what it writes for the same batch (the spool and the wire golden
tests hold it), or import pyarrow.compute at module level (the flush path of an agent without an
upstream never loads it: tests/core/test_lazy_imports.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from edgecollect.footprint import release_arrow_memory
from edgecollect.format import (
    COL_ATTRIBUTES,
    COL_BODY_BOOL,
    COL_BODY_BYTES,
    COL_BODY_DOUBLE,
    COL_BODY_INT,
    COL_BODY_STR,
    COL_BODY_TYPE,
    COL_DOUBLE,
    COL_FLAGS,
    COL_INT,
    COL_KIND,
    COL_NAME,
    COL_SEVERITY_NUMBER,
    COL_SEVERITY_TEXT,
    COL_START_TIME,
    COL_TIME,
    COL_UNIT,
    MERGE_KEYS,
    META_BOOT_ID,
    META_FORMAT,
    META_RESOURCE,
    Signal,
    signal_of,
)

TS = pa.timestamp("ns", tz="UTC")

METRICS_FIELDS = [
    pa.field(COL_NAME, pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field(COL_UNIT, pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field(COL_KIND, pa.dictionary(pa.int8(), pa.string()), nullable=False),
    pa.field(COL_ATTRIBUTES, pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field(COL_START_TIME, TS),
    pa.field(COL_TIME, TS, nullable=False),
    pa.field(COL_DOUBLE, pa.float64()),
    pa.field(COL_INT, pa.int64()),
    pa.field(COL_FLAGS, pa.uint8(), nullable=False),
]

LOGS_FIELDS = [
    pa.field(COL_TIME, TS, nullable=False),
    pa.field(COL_SEVERITY_NUMBER, pa.int32(), nullable=False),
    pa.field(COL_SEVERITY_TEXT, pa.dictionary(pa.int8(), pa.string()), nullable=False),
    pa.field(COL_BODY_TYPE, pa.uint8(), nullable=False),
    pa.field(COL_BODY_STR, pa.string()),
    pa.field(COL_BODY_INT, pa.int64()),
    pa.field(COL_BODY_DOUBLE, pa.float64()),
    pa.field(COL_BODY_BOOL, pa.bool_()),
    pa.field(COL_BODY_BYTES, pa.binary()),
    pa.field(COL_ATTRIBUTES, pa.dictionary(pa.int32(), pa.string()), nullable=False),
    pa.field(COL_FLAGS, pa.uint8(), nullable=False),
]

# zstd's own default level. Arrow's default (1) left host-like batches 13 % larger at no saving in
# time: each buffer is small, so the level's cost hardly shows (tests/bench/bench_core.py).
# Single-threaded: with threads, Arrow compresses the columns on its global CPU pool, two more
# threads that wake on every flush for a few kB of buffers (docs/benchmarks/footprint.md).
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=pa.Codec("zstd", compression_level=3), use_threads=False)
IPC_READ_OPTIONS = pa.ipc.IpcReadOptions(use_threads=False)


class BatchFormatError(ValueError):
    """A batch that does not follow the contract (a column missing); never retried into shape."""


def batch_metadata(fmt: str, resource_json: str, boot_id: str) -> dict[bytes, bytes]:
    """The schema metadata of a new batch."""
    return {META_FORMAT: fmt.encode(), META_RESOURCE: resource_json.encode(), META_BOOT_ID: boot_id.encode()}


def format_of(meta: Mapping[bytes, bytes] | None) -> str:
    """The format name in a batch's schema metadata ("" when it has none)."""
    return (meta or {}).get(META_FORMAT, b"").decode()


def to_ipc(batch: pa.RecordBatch) -> bytes:
    """A spooled batch's bytes: one self-contained IPC stream (schema, dictionaries, the batch)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema, options=IPC_OPTIONS) as writer:
        writer.write_batch(batch)
    data = bytes(sink.getvalue().to_pybytes())
    release_arrow_memory()  # the batch's buffers are free now: give the pages back (rate-limited)
    return data


def from_ipc(data: bytes) -> pa.RecordBatch:
    """The single record batch of a spooled IPC stream (raises pyarrow errors on damage)."""
    reader = pa.ipc.open_stream(pa.py_buffer(data), options=IPC_READ_OPTIONS)
    batches = list(reader)
    if len(batches) != 1:
        raise ValueError(f"expected one record batch, found {len(batches)}")
    return batches[0]


def head_metadata(head: bytes) -> dict[bytes, bytes]:
    """The schema metadata from the start of a batch's bytes (the schema message is enough)."""
    schema = pa.ipc.open_stream(pa.py_buffer(head), options=IPC_READ_OPTIONS).schema
    return dict(schema.metadata or {})


@dataclass(frozen=True, slots=True)
class BatchView:
    """One decoded spooled batch, read by the contract's names."""

    batch: pa.RecordBatch

    @property
    def metadata(self) -> dict[bytes, bytes]:
        meta: dict[bytes, bytes] = self.batch.schema.metadata or {}
        return meta

    @property
    def format_name(self) -> str:
        return format_of(self.metadata)

    @property
    def signal(self) -> Signal | None:
        """metrics or logs; None for a format this version does not know."""
        return signal_of(self.format_name)

    @property
    def points(self) -> int:
        """Rows: samples of a metrics batch, records of a logs batch."""
        return int(self.batch.num_rows)

    @property
    def boot_id(self) -> str:
        return self.metadata.get(META_BOOT_ID, b"").decode()

    @property
    def resource_json(self) -> str:
        """The resource attributes as their JSON text ("{}" when absent)."""
        return self.metadata.get(META_RESOURCE, b"{}").decode()

    def resource(self) -> dict[str, Any]:
        """The resource attributes; {} when the metadata is not a JSON object."""
        try:
            parsed = json.loads(self.metadata.get(META_RESOURCE, b"{}"))
        except ValueError:  # UnicodeDecodeError included
            return {}
        return parsed if isinstance(parsed, dict) else {}

    @property
    def merge_key(self) -> tuple[bytes, ...]:
        """Equal for batches that say the same about their rows: format, resource and boot."""
        meta = self.metadata
        return tuple(meta.get(k, b"") for k in MERGE_KEYS)

    def has(self, name: str) -> bool:
        return bool(self.batch.schema.get_field_index(name) >= 0)

    def column(self, name: str) -> pa.Array:
        index = self.batch.schema.get_field_index(name)
        if index < 0:
            raise BatchFormatError(f"spooled batch has no column {name!r}")
        return self.batch.column(index)

    def values(self, name: str) -> list[Any]:
        """A column as Python values (dictionaries decoded)."""
        return self.column(name).to_pylist()  # type: ignore[no-any-return]

    def nanos(self, name: str) -> list[int | None]:
        """A timestamp column as integer Unix nanoseconds."""
        return self.column(name).cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]

    @property
    def flags(self) -> pa.Array:
        return self.column(COL_FLAGS)

    def time_range_ns(self) -> tuple[int, int] | None:
        """(earliest, latest) row time in Unix ns; None for an empty batch."""
        import pyarrow.compute as pc  # on demand: see the module docstring

        if self.points == 0:
            return None
        low_high = pc.min_max(self.column(COL_TIME).cast(pa.int64()))
        return int(low_high["min"].as_py()), int(low_high["max"].as_py())


def view(batch: pa.RecordBatch) -> BatchView:
    return BatchView(batch)


def read_batch(payload: bytes) -> BatchView:
    """A spooled batch's bytes, decoded (raises pyarrow errors or ValueError on damage)."""
    return BatchView(from_ipc(payload))


__all__ = [
    "IPC_OPTIONS", "IPC_READ_OPTIONS", "LOGS_FIELDS", "METRICS_FIELDS", "TS", "BatchFormatError", "BatchView",
    "batch_metadata", "format_of", "from_ipc", "head_metadata", "read_batch", "to_ipc", "view",
]
