"""The batcher thread: cut batches by age or size, spool them, then tell sources they are durable.

Every `flush_interval` all rings are drained together into one metrics batch (split at
`max_points`) and one logs batch, each written to the spool. In between, a ring that fills to
`max_points` is cut on its own, in whole batches of `max_points`: the few points that arrived
while the batcher woke stay for the next cut, rather than becoming a tiny batch of their own
(each batch costs an fsync and about 3 KB of schema and dictionaries). A source that owes acks
(`Ring.request_flush`) gets its whole ring cut at once. Only
after the spool returned — the file fsync'd and renamed — does each ring hear `mark_durable(token)`,
which is when the MQTT source acks its broker (design.md invariant 3). With write-behind
(`[spool] mode = "write_behind"`, writebehind.py) a cut is first offered to the hold: while the
upstream is healthy it goes to the forwarder without touching the disk, and its tokens are released
when the upstream acks it or when it is spilled to the spool, whichever comes first.

If the spool cannot write (disk error), the encoded batches are kept and retried on the next tick
and no ring is drained meanwhile; the rings then fill and apply their own counted overflow policy,
so memory stays bounded and nothing is acknowledged that is not on disk.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edgecollect.batch import build_logs, build_metrics, chunks, merge, to_ipc
from edgecollect.buffer import Drained, Ring
from edgecollect.errors import SpoolFault
from edgecollect.format.clockrepair import repair_drained, repair_logs
from edgecollect.model import LogRecord, Resource, SeriesRegistry
from edgecollect.telemetry import Telemetry
from edgecollect.timesync import ClockStep

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# write(signal, ipc_bytes, points) -> batch id, or None when the spool's policy refused it
SpoolWrite = Callable[[str, bytes, int], "int | None"]


class Hold(Protocol):
    """Where a cut goes before the spool: the write-behind hold (writebehind.WriteBehind), declared
    here so that the batcher names nothing of the spool stage that comes after it."""

    def spill_due(self) -> None: ...

    def commit(self, encoded: Sequence[tuple[str, bytes, int]], tokens: Sequence[tuple[Ring, int]],
               built: Sequence[pa.RecordBatch] = ()) -> bool: ...

    def release_after(self, tokens: Sequence[tuple[Ring, int]]) -> None: ...


@dataclass
class _Pending:
    encoded: list[tuple[str, bytes, int]]
    tokens: list[tuple[Ring, int]] = field(default_factory=list)
    built: list[pa.RecordBatch] = field(default_factory=list)  # the Arrow batches of `encoded`


class Batcher:
    def __init__(
        self,
        rings: Sequence[Ring],
        registry: SeriesRegistry,
        resource: Resource,
        boot_id: str,
        write: SpoolWrite,
        telemetry: Telemetry,
        flush_interval_s: float,
        max_points: int,
        on_written: Callable[[], None] | None = None,
        on_tick: Callable[[], object] | None = None,
    ) -> None:
        self._rings = list(rings)
        self._registry = registry
        self._resource = resource
        self._boot_id = boot_id
        self._write = write
        self._flush_interval_s = flush_interval_s
        self._max_points = max_points
        self._on_written = on_written
        self._on_tick = on_tick  # the spool's max_age, applied while running (cheap: no listing)
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._pending: _Pending | None = None
        self._behind: Hold | None = None
        self._steps: list[ClockStep] = []
        self._steps_lock = threading.Lock()
        self._batches = telemetry.counter("batch", "batches", "signal")
        self._points = telemetry.counter("batch", "points", "signal")
        self._failures = telemetry.counter("batch", "spool_failures")
        self._encode_us = telemetry.counter("batch", "encode_time", unit="us")
        for ring in self._rings:
            ring.set_wake(self._wake.set, max_points)

    def add_ring(self, ring: Ring) -> None:
        ring.set_wake(self._wake.set, self._max_points)
        self._rings.append(ring)

    def set_behind(self, behind: Hold | None) -> None:
        """Write-behind (writebehind.py): cuts go to the upstream first, to the spool if they must."""
        self._behind = behind

    def clock_step(self, step: ClockStep) -> None:
        """Repair what the rings hold now: the step is applied to the next drain of every ring."""
        with self._steps_lock:
            self._steps.append(step)

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Cut on every tick or wake-up until `stop`; the final flush is the caller's (runtime)."""
        next_tick = time.monotonic() + self._flush_interval_s
        while not stop.is_set():
            self._wake.wait(max(0.0, next_tick - time.monotonic()))
            self._wake.clear()
            if stop.is_set():
                break
            if time.monotonic() >= next_tick:
                if self._on_tick is not None:
                    self._on_tick()
                self.flush()
                next_tick = time.monotonic() + self._flush_interval_s
            else:
                self.flush(full=False)
            if self._pending is not None:
                # The spool refused a write; full rings would wake us on every append otherwise.
                stop.wait(min(1.0, self._flush_interval_s))

    def flush(self, full: bool = True) -> int:
        """Cut into the spool now; returns points made durable. Thread-safe.

        `full`: drain every ring; else only rings at `max_points` (whole batches) or whose source
        asked for a flush.
        """
        with self._flush_lock:
            if not self._spill_due():
                return 0
            if self._pending is not None and not self._commit(self._pending):
                return 0
            self._pending = None
            pending = self._cut(full)
            if pending is None:
                return 0
            points = sum(n for _, _, n in pending.encoded)
            if not self._commit(pending):
                self._pending = pending
                return 0
            return points

    def _drain(self, ring: Ring, full: bool) -> Drained | None:
        if full or ring.flush_requested():
            return ring.drain()
        whole = len(ring) // self._max_points * self._max_points
        return ring.drain(whole) if whole else None

    def _cut(self, full: bool = True) -> _Pending | None:
        started = time.perf_counter()
        with self._steps_lock:
            # A clock step must reach every point held at the step: those cuts take everything.
            full = full or bool(self._steps)
            steps, self._steps = self._steps, []
            drains = [(ring, d) for ring in self._rings if (d := self._drain(ring, full)) is not None]
        for step in steps:
            for _, drained in drains:
                repair_drained(drained, step)
                drained.logs = repair_logs(drained.logs, step)
        rows = merge(d for _, d in drains)
        logs: list[LogRecord] = [rec for _, d in drains for rec in d.logs]
        tokens = [(ring, d.max_token) for ring, d in drains if d.max_token]
        encoded: list[tuple[str, bytes, int]] = []
        built: list[pa.RecordBatch] = []
        if len(rows.series_ids):
            for part in chunks(rows, self._max_points):
                batch = build_metrics(part, self._registry, self._resource, self._boot_id)
                encoded.append(("metrics", to_ipc(batch), batch.num_rows))
                built.append(batch)
        for lo in range(0, len(logs), self._max_points):
            part_logs = logs[lo : lo + self._max_points]
            batch = build_logs(part_logs, self._resource, self._boot_id)
            encoded.append(("logs", to_ipc(batch), len(part_logs)))
            built.append(batch)
        self._encode_us.inc(n=int((time.perf_counter() - started) * 1e6))
        if not encoded and not tokens:
            return None
        return _Pending(encoded, tokens, built)

    def _spill_due(self) -> bool:
        """Held batches that waited too long, or all of them when stopping, go to the spool first."""
        if self._behind is None:
            return True
        try:
            self._behind.spill_due()
        except SpoolFault as exc:
            self._failures.inc()
            log.error("batcher: %s; keeping held batches in memory to retry", exc)
            return False
        return True

    def _commit(self, pending: _Pending) -> bool:
        behind = self._behind
        if behind is not None:
            try:
                held = behind.commit(pending.encoded, pending.tokens, pending.built)
            except SpoolFault as exc:
                self._failures.inc()
                log.error("batcher: %s; keeping %d batch(es) in memory to retry", exc, len(pending.encoded))
                return False
            if held:
                for signal, _, points in pending.encoded:
                    self._batches.inc(signal)
                    self._points.inc(signal, points)
                pending.encoded.clear()
                pending.built.clear()
                return True
        pending.built.clear()  # to the spool: the forwarder reads the bytes back from there
        while pending.encoded:
            signal, data, points = pending.encoded[0]
            try:
                self._write(signal, data, points)
            except SpoolFault as exc:
                self._failures.inc()
                log.error("batcher: %s; keeping %d batch(es) in memory to retry", exc, len(pending.encoded))
                return False
            pending.encoded.pop(0)
            self._batches.inc(signal)
            self._points.inc(signal, points)
        if behind is not None:
            behind.release_after(pending.tokens)  # after every earlier cut, some may still be held
        else:
            for ring, token in pending.tokens:
                ring.mark_durable(token)
        if self._on_written is not None:
            self._on_written()
        return True
