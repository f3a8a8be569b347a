"""The OTAP (OTel-Arrow) encoder: spooled Arrow batches → BatchArrowRecords for ONE gRPC stream.

Wire format: shared/spec/otap-wire.md. An `OtapStreamEncoder` is the producer state of one gRPC stream
and one signal (batch ids 0, 1, 2, …; one continuous Arrow IPC stream per table with delta dictionaries;
`schema_id`s from one counter) — the transport creates a new one for every new stream (R8, pitfall 25)
and must send every BAR it returns, in order, on that stream: the receiver's IPC readers advance with
each payload. Table contents and the OTLP mapping (resource, scope, kinds, clock-flag attributes) are
documented in otap_tables.py; attribute tables and id encodings in otap_attrs.py; IPC state in
otap_ipc.py.

Recovery: any exception while encoding leaves no half-advanced writer behind — every table starts a
new IPC stream under a new `schema_id` on the next call, which the receiver accepts on the same gRPC
stream (§3.3). `reset_to_self_contained()` switches to strategy B for good: every payload a complete IPC
stream under a fresh `schema_id`, decodable without any earlier BAR.

Not thread-safe: one encoder belongs to the one thread that sends on its stream.

Wire size (tests/bench/bench_wire.py): IPC zstd alone leaves the per-table IPC metadata (about 1.6 KB
per BAR) uncompressed, which dominates small batches; gRPC gzip on top halves a 10 s host batch, and
`ipc_compression="none"` with gRPC gzip is smaller still for batches of a few hundred points.

Limits: at most 65 535 distinct metrics, or 65 535 log records with attributes, per batch (16-bit ids);
`split_for_otap` cuts bigger batches, `encode` raises OtapEncodeError for them. An empty batch raises
too: there is nothing to send, and an empty BAR would be NACKed (pitfall 22).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import pyarrow as pa

from edgecollect.exporters.otap_attrs import Entry, entries_from_json
from edgecollect.exporters.otap_ipc import OtapEncodeError, SchemaIds, TableStream
from edgecollect.exporters.otap_tables import MAX_IDS_16, StreamDicts, Table, logs_tables, metrics_tables
from edgecollect.exporters.proto import arrow_service_pb2 as pb
from edgecollect.format import COL_KIND, COL_NAME, COL_UNIT, FORMAT_OF, METRICS_FORMAT, Signal
from edgecollect.format.reader import view

__all__ = ["OtapEncodeError", "OtapStreamEncoder", "split_for_otap"]

_ZSTD_LEVEL = 3
_JSON_CACHE_MAX = 4096  # distinct attribute sets remembered across batches (bounded memory)


class OtapStreamEncoder:
    """Producer state for ONE gRPC stream and one signal; create a new one for every new stream."""

    def __init__(
        self,
        signal: Signal,
        *,
        self_contained: bool = False,
        ipc_compression: Literal["zstd", "none"] = "zstd",
    ) -> None:
        if signal not in FORMAT_OF:
            raise ValueError(f"signal must be 'metrics' or 'logs', got {signal!r}")
        if ipc_compression not in ("zstd", "none"):
            raise ValueError(f"ipc_compression must be 'zstd' or 'none', got {ipc_compression!r}")
        self._signal: Signal = signal
        self._self_contained = self_contained
        self._options = pa.ipc.IpcWriteOptions(
            # Level 3, not Arrow C++'s default 1: what the Go producer's zstd uses, ~10% smaller.
            compression=pa.Codec("zstd", compression_level=_ZSTD_LEVEL) if ipc_compression == "zstd" else None,
            emit_dictionary_deltas=True,
            use_threads=False,
        )
        self._ids = SchemaIds()
        self._tables: dict[int, TableStream] = {}
        self._dicts = StreamDicts()
        self._next_batch_id = 0
        self._parsed: OrderedDict[str, tuple[Entry, ...]] = OrderedDict()

    @property
    def next_batch_id(self) -> int:
        """The `batch_id` the next encoded BAR will carry."""
        return self._next_batch_id

    @property
    def self_contained(self) -> bool:
        return self._self_contained

    def reset_to_self_contained(self) -> None:
        """Strategy B from now on: every payload a complete IPC stream under a fresh `schema_id`."""
        self._self_contained = True
        self._reset_streams()

    def encode(self, batch: pa.RecordBatch) -> pb.BatchArrowRecords:
        """The next BAR of this stream for one spooled batch; root payload first, never empty."""
        fmt = view(batch).format_name
        if fmt != FORMAT_OF[self._signal]:
            want = FORMAT_OF[self._signal]
            raise OtapEncodeError(f"a {self._signal} stream needs a {want} batch, got {fmt!r}")
        if batch.num_rows == 0:
            raise OtapEncodeError("empty batch: nothing to send")
        if self._self_contained:
            self._reset_streams()
        try:
            tables = self._tables_of(batch)
            bar = pb.BatchArrowRecords(batch_id=self._next_batch_id)
            for ptype, cols in tables:
                stream = self._tables.get(ptype)
                if stream is None:
                    stream = self._tables[ptype] = TableStream(self._ids, self._options)
                schema_id, record = stream.write_columns(cols)
                bar.arrow_payloads.add(schema_id=schema_id, type=ptype, record=record)
        except BaseException as exc:
            # Tables written before the failure advanced their IPC streams for a BAR that will never
            # be sent: start every table over under new schema ids (§3.3, pitfall 3).
            self._reset_streams()
            if isinstance(exc, (pa.ArrowException, KeyError, IndexError, TypeError)):
                raise OtapEncodeError(f"cannot encode batch: {exc}") from exc
            raise
        self._next_batch_id += 1
        return bar

    def _tables_of(self, batch: pa.RecordBatch) -> list[Table]:
        if self._signal == "metrics":
            return metrics_tables(batch, self._dicts, self._parse)
        return logs_tables(batch, self._dicts, self._parse)

    def _parse(self, text: str) -> tuple[Entry, ...]:
        # The same series' attribute JSON comes back every batch; parse it once per stream.
        hit = self._parsed.get(text)
        if hit is None:
            hit = self._parsed[text] = entries_from_json(text)
            if len(self._parsed) > _JSON_CACHE_MAX:
                self._parsed.popitem(last=False)
        return hit

    def _reset_streams(self) -> None:
        for stream in self._tables.values():
            stream.reset()
        self._dicts.reset()


def split_for_otap(batch: pa.RecordBatch) -> list[pa.RecordBatch]:
    """`batch` cut into row ranges that each fit one BAR's 16-bit ids (usually `[batch]` itself).

    Metrics: at most 65 535 distinct (name, unit, kind) per piece; logs: at most 65 535 records per
    piece. Slices keep the schema and its metadata (resource, format), so each piece encodes alone.
    """
    n = batch.num_rows
    if n <= MAX_IDS_16:
        return [batch]
    if view(batch).format_name == METRICS_FORMAT:
        keys = (COL_NAME, COL_UNIT, COL_KIND)
        cols = {}
        for c in keys:
            col = batch.column(batch.schema.get_field_index(c))
            cols[c] = col.dictionary_decode() if pa.types.is_dictionary(col.type) else col
        if pa.table(cols).group_by(list(keys)).aggregate([]).num_rows <= MAX_IDS_16:
            return [batch]
    return [batch.slice(lo, MAX_IDS_16) for lo in range(0, n, MAX_IDS_16)]
