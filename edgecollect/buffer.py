"""Bounded ring buffers: one per source, a fixed memory budget, an explicit overflow policy.

Samples are stored column-wise in `array.array`s (not lists of Python objects). A ring starts with
room for `INITIAL_SLOTS` points and doubles its storage when it fills, up to `capacity`: the cap is
a hard bound (`capacity` points of `POINT_BYTES` each, whatever the input rate), but a source that
holds 60 points between flushes pays for 256, not for the 100,000 its budget allows (3.7 MB per
ring at the default). After a full drain that used less than a quarter of the storage, the storage
halves again (never below `INITIAL_SLOTS`), so a burst does not pin its peak forever. Log records
live beside them in a bounded deque with a byte budget.

Overflow: `drop_oldest` (default) overwrites the oldest point, `drop_newest` refuses the new one.
Either way the drop is counted (invariant 6), labelled with the policy.

Delivery tokens: a source may tag what it appends with an increasing integer token (the MQTT source
uses one per message). `drain()` reports the highest token covered; once the batch is durable the
batcher calls `mark_durable(token)` and the ring tells its listeners (design.md, "spool" row).
"""

from __future__ import annotations

import threading
from array import array
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from edgecollect.model import LogRecord
from edgecollect.telemetry import Counter

Overflow = Literal["drop_oldest", "drop_newest"]

# series id (4) + time (8) + float value (8) + int value (8) + flags (1) + token (8)
POINT_BYTES = 37
FLAG_INT = 0x80  # value lives in the int column; the other bits are clock flags (clock.py)
LOG_OVERHEAD_BYTES = 200  # a record's fixed cost beyond its body, for the log byte budget
INITIAL_SLOTS = 256  # storage a new ring starts with (9.5 kB); it grows by doubling up to capacity


@dataclass
class Drained:
    """Everything a ring held at one moment, oldest first, columns aligned."""

    series_ids: array[int] = field(default_factory=lambda: array("I"))
    times_ns: array[int] = field(default_factory=lambda: array("q"))
    floats: array[float] = field(default_factory=lambda: array("d"))
    ints: array[int] = field(default_factory=lambda: array("q"))
    flags: array[int] = field(default_factory=lambda: array("B"))
    logs: list[LogRecord] = field(default_factory=list)
    max_token: int = 0

    def __len__(self) -> int:
        return len(self.series_ids)


def log_size(record: LogRecord) -> int:
    body = record.body
    size = len(body) if isinstance(body, (str, bytes)) else 8
    return LOG_OVERHEAD_BYTES + size + sum(len(k) + 16 for k, _ in record.attributes)


class Ring:
    def __init__(
        self,
        name: str,
        capacity: int,
        overflow: Overflow,
        dropped: Counter,
        dropped_logs: Counter,
        max_log_bytes: int = 1 << 20,
    ) -> None:
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.overflow: Overflow = overflow
        self._dropped = dropped
        self._dropped_logs = dropped_logs
        self._max_log_bytes = max_log_bytes
        self._size = 0  # slots allocated: INITIAL_SLOTS at first, at most capacity
        self._allocate(min(INITIAL_SLOTS, capacity))
        self._head = 0  # index of the oldest point
        self._count = 0
        self._logs: deque[tuple[LogRecord, int]] = deque()
        self._log_bytes = 0
        self._max_token = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[int], None]] = []
        self._wake: Callable[[], None] | None = None
        self._wake_at = capacity
        self._flush_requested = False

    # -- writing ------------------------------------------------------------------------------

    def append(self, series_id: int, time_ns: int, value: int | float, flags: int = 0, token: int = 0) -> None:
        with self._lock:
            self._put(series_id, time_ns, value, flags, token)
        self._maybe_wake()

    def extend(
        self,
        items: Sequence[tuple[int, int, int | float, int]],
        token: int = 0,
    ) -> None:
        """Append (series_id, time_ns, value, flags) rows atomically under one token.

        Atomic so that a drain never covers half of one MQTT message: a token reported by
        `drain()` means every point carrying it is in that drain (or was dropped).
        """
        with self._lock:
            for series_id, time_ns, value, flags in items:
                self._put(series_id, time_ns, value, flags, token)
            if token > self._max_token:
                self._max_token = token
        self._maybe_wake()

    def append_log(self, record: LogRecord, token: int = 0) -> None:
        size = log_size(record)
        with self._lock:
            if size > self._max_log_bytes:
                self._dropped_logs.inc("too_large")
                return
            while self._log_bytes + size > self._max_log_bytes:
                if self.overflow == "drop_newest":
                    self._dropped_logs.inc(self.overflow)
                    return
                old, _ = self._logs.popleft()
                self._log_bytes -= log_size(old)
                self._dropped_logs.inc(self.overflow)
            self._logs.append((record, token))
            self._log_bytes += size
            if token > self._max_token:
                self._max_token = token

    def note_token(self, token: int) -> None:
        """Record a token whose message produced nothing to buffer, so a later drain covers it."""
        with self._lock:
            if token > self._max_token:
                self._max_token = token

    def _allocate(self, size: int) -> None:
        """Fresh zeroed storage of `size` slots (lock held, ring empty or about to be refilled)."""
        self._sid = array("I", bytes(4 * size))
        self._time = array("q", bytes(8 * size))
        self._float = array("d", bytes(8 * size))
        self._int = array("q", bytes(8 * size))
        self._flags = array("B", bytes(size))
        self._token = array("q", bytes(8 * size))
        self._size = size

    def _resize(self, size: int) -> None:
        """Move the held points, oldest first, into storage of `size` slots (lock held)."""
        head, count, old = self._head, self._count, self._size
        first = min(count, old - head)
        ints = (self._sid, self._time, self._int, self._flags, self._token)
        floats = self._float
        self._allocate(size)
        for src, dst in zip(ints, (self._sid, self._time, self._int, self._flags, self._token), strict=True):
            dst[0:first] = src[head : head + first]
            dst[first:count] = src[0 : count - first]
        self._float[0:first] = floats[head : head + first]
        self._float[first:count] = floats[0 : count - first]
        self._head = 0

    def _put(self, series_id: int, time_ns: int, value: int | float, flags: int, token: int) -> None:
        if self._count == self._size < self.capacity:
            self._resize(min(self._size * 2, self.capacity))
        cap = self._size
        if self._count == self.capacity:
            if self.overflow == "drop_newest":
                self._dropped.inc("drop_newest")
                if token > self._max_token:
                    self._max_token = token
                return
            self._head = (self._head + 1) % cap
            self._count -= 1
            self._dropped.inc("drop_oldest")
        slot = (self._head + self._count) % cap
        self._sid[slot] = series_id
        self._time[slot] = time_ns
        if isinstance(value, int):  # bool is an int too: ON/OFF readings stay exact
            self._int[slot] = value
            self._float[slot] = 0.0
            self._flags[slot] = flags | FLAG_INT
        else:
            self._float[slot] = value
            self._int[slot] = 0
            self._flags[slot] = flags & ~FLAG_INT
        self._token[slot] = token
        self._count += 1
        if token > self._max_token:
            self._max_token = token

    # -- reading ------------------------------------------------------------------------------

    def drain(self, limit: int | None = None) -> Drained:
        """Take everything, or with `limit` only the oldest `limit` points (no log records then).

        A partial drain reports only the tokens it fully covers: everything below the oldest token
        still held, so a message whose points straddle the cut is not acknowledged early.
        """
        with self._lock:
            if limit is not None:
                out = self._take_oldest(max(0, min(limit, self._count)))
                out.max_token = self._covered_token()
                return out
            out = self._take_oldest(self._count)
            out.max_token = self._max_token
            self._head = 0
            if len(out) * 4 < self._size and self._size > INITIAL_SLOTS:
                self._allocate(max(INITIAL_SLOTS, self._size // 2))
            out.logs = [record for record, _ in self._logs]
            self._logs.clear()
            self._log_bytes = 0
            self._flush_requested = False
            return out

    def _take_oldest(self, n: int) -> Drained:
        """Move the oldest `n` points out of the ring (lock held)."""
        head, cap = self._head, self._size
        first = min(n, cap - head)
        out = Drained()
        int_columns: tuple[tuple[array[int], array[int]], ...] = (
            (self._sid, out.series_ids),
            (self._time, out.times_ns),
            (self._int, out.ints),
            (self._flags, out.flags),
        )
        for src, dst in int_columns:
            dst.extend(src[head : head + first])
            dst.extend(src[0 : n - first])
        out.floats.extend(self._float[head : head + first])
        out.floats.extend(self._float[0 : n - first])
        self._head = (head + n) % cap
        self._count -= n
        return out

    def _covered_token(self) -> int:
        """The highest token none of whose points or records is still held (lock held)."""
        head, count, cap = self._head, self._count, self._size
        first = min(count, cap - head)
        held = [t for t in self._token[head : head + first] if t]
        held += [t for t in self._token[0 : count - first] if t]
        held += [t for _, t in self._logs if t]
        return min(self._max_token, min(held) - 1) if held else self._max_token

    def __len__(self) -> int:
        return self._count

    def log_count(self) -> int:
        return len(self._logs)

    def memory_bytes(self) -> int:
        """What the ring holds now: its point storage (grown so far) and its log records."""
        return self._size * POINT_BYTES + self._log_bytes

    def max_memory_bytes(self) -> int:
        """The hard bound: point storage at full capacity plus the log byte budget."""
        return self.capacity * POINT_BYTES + self._max_log_bytes

    # -- durability ---------------------------------------------------------------------------

    def on_durable(self, listener: Callable[[int], None]) -> None:
        """`listener(token)` is called once everything up to `token` is durable (or was dropped)."""
        self._listeners.append(listener)

    def mark_durable(self, token: int) -> None:
        for listener in list(self._listeners):
            listener(token)

    def set_wake(self, wake: Callable[[], None], at_points: int) -> None:
        """Let the batcher cut early when this ring holds `at_points` (batch.max_points)."""
        self._wake = wake
        self._wake_at = max(1, min(at_points, self.capacity))

    def request_flush(self) -> None:
        """Ask the batcher to cut now: a source holds unacked messages (MQTT QoS >= 1) for this ring.

        A broker stops sending after its in-flight window, and acks wait for durability, so
        waiting for the next `flush_interval` would throttle a QoS 1 stream to a crawl.
        """
        with self._lock:
            self._flush_requested = True
        if self._wake is not None:
            self._wake()

    def flush_requested(self) -> bool:
        """Whether a source asked for everything to be cut (cleared by a full drain)."""
        with self._lock:
            return self._flush_requested

    def _maybe_wake(self) -> None:
        if self._wake is not None and self._count >= self._wake_at:
            self._wake()
