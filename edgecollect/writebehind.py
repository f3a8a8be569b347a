"""Write-behind: a batch goes straight to a healthy upstream and touches the disk only if it must.

Owns the batches the batcher cut but did not spool (the *hold*), and the rule that makes a batch
durable (design.md invariant 3): acknowledged by the upstream, or fsync'd to the spool — whichever
comes first. A cut's ring tokens (MQTT PUBACKs) are released only when every batch of that cut and
of every earlier cut is durable, because `Ring.mark_durable(token)` covers all tokens up to it.

A batch is *held* (kept in memory, handed to the forwarder) only while all of these hold:
`[spool] mode = "write_behind"`, the upstream is healthy (its last verdict was ok, or none yet),
the spool has no backlog (else order per series would break: the backlog must leave first), the
agent is not stopping, and the hold is within its bounds (`max_batches`, `max_bytes`). Otherwise
the hold is *spilled*: every held batch is written to the spool in cut order, then the new batch
after them, exactly as `mode = "always"` does — so the spool's order is always the cut order.

The hold is spilled as a whole when its oldest batch waited `timeout_s` without an ack, when the
upstream answers anything but ok, or when the agent stops. A spilled batch that is still in flight
keeps flying: its ack then deletes the spooled copy (`spool_id_of`).

Must never: release a token before its batch is durable; hold more than its bounds; reorder.
Thread-safety: the batcher thread holds and spills, the forwarder thread takes, acks and spills;
one lock guards the state, and spool writes happen under it so that two spills cannot interleave.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from edgecollect.telemetry import Telemetry

if TYPE_CHECKING:
    import pyarrow as pa

    from edgecollect.spool import Spool

log = logging.getLogger(__name__)

# Held batches are named in the forwarder's id space above every spool sequence number.
HELD_BASE = 1 << 62

SpoolAppend = Callable[[str, bytes, int], "int | None"]


class Durable(Protocol):
    """What a cut's tokens are released to: a ring (buffer.Ring)."""

    def mark_durable(self, token: int) -> None: ...


@dataclass(slots=True)
class Held:
    key: int  # HELD_BASE + n, the forwarder's id for it
    signal: str
    payload: bytes
    points: int
    born: float  # monotonic
    due: float  # monotonic: when it should leave (born, or born + send_interval when no ack is owed)
    sent: bool = False
    durable: bool = False
    # The Arrow batch `payload` was encoded from, for the forwarder to send without decoding it
    # again. Only the newest cut that leaves at once keeps it, and only until the forwarder takes
    # it, so the hold carries at most one cut's batches besides its bytes (not counted in max_bytes).
    batch: pa.RecordBatch | None = None

    def take_batch(self) -> pa.RecordBatch | None:
        """The built batch, once: later sends of this batch (resends) decode `payload`."""
        batch, self.batch = self.batch, None
        return batch


@dataclass(slots=True)
class _Cut:
    keys: set[int]
    tokens: list[tuple[Durable, int]] = field(default_factory=list)


class WriteBehind:
    def __init__(
        self,
        append: SpoolAppend,
        backlog: Callable[[], int],
        telemetry: Telemetry,
        stop: threading.Event,
        timeout_s: float = 5.0,
        send_interval_s: float = 0.0,
        max_batches: int = 64,
        max_bytes: int = 8 * 1024**2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._append = append
        self._backlog = backlog
        self._stop = stop
        self.timeout_s = timeout_s
        self.send_interval_s = send_interval_s
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.RLock()
        self._held: dict[int, Held] = {}  # insertion order = cut order
        self._bytes = 0
        self._cuts: deque[_Cut] = deque()
        self._spilled: dict[int, int] = {}  # held key -> spool id, while its flight may still answer
        self._next = HELD_BASE
        self._healthy = True  # optimistic until the first verdict: a healthy start writes nothing
        self._confirmed = False  # no ok seen yet: nothing waits for the cadence (find out at once)
        self._wake: Callable[[], None] = lambda: None
        self._wire_points: int | None = None  # the forwarder's wire batch (take's max_points), once seen
        self._sent = telemetry.counter("write_behind", "batches", "outcome")
        telemetry.gauge("write_behind", "held", lambda: len(self._held), unit="{batch}")
        telemetry.gauge("write_behind", "held_bytes", lambda: self._bytes, unit="By")

    def set_wake(self, wake: Callable[[], None]) -> None:
        """The forwarder's wake-up: called when batches are held for it."""
        self._wake = wake

    # -- the batcher's side -------------------------------------------------------------------

    def commit(self, encoded: Sequence[tuple[str, bytes, int]], tokens: Sequence[tuple[Durable, int]],
               built: Sequence[pa.RecordBatch] = ()) -> bool:
        """Hold one cut for the upstream; False when it must go to the spool (the hold is spilled
        first, so the caller's appends follow every earlier cut). Raises SpoolFault from a spill.
        `built`, if given, are the Arrow batches of `encoded` (same order), kept as Held.batch."""
        with self._lock:
            size = sum(len(data) for _, data, _ in encoded)
            if not self._admits(len(encoded), size):
                self.spill("spooled")
                return False
            now = self._clock()
            # A cut that owes acks (MQTT) leaves at once; the rest waits for the send cadence,
            # so the wire sees fewer, larger batches (coalesced by the forwarder).
            due = now if any(token for _, token in tokens) else now + self.send_interval_s
            before = self.deadline()
            keys = set()
            for held in self._held.values():
                held.batch = None  # not taken yet: an earlier cut decodes its bytes when it leaves
            keep = due <= now and len(built) == len(encoded)
            for i, (signal, data, points) in enumerate(encoded):
                key = self._next
                self._next += 1
                self._held[key] = Held(key, signal, data, points, now, due, batch=built[i] if keep else None)
                self._bytes += len(data)
                keys.add(key)
            self._cuts.append(_Cut(keys, list(tokens)))
            self._sent.inc("held", len(encoded))
            self._release()  # a cut with no batch (tokens only) is durable at once, in order
            wake = self._changes_plans(now, due, before, {signal for signal, _, _ in encoded})
        if wake:
            self._wake()
        return True

    def _changes_plans(self, now: float, due: float, before: float | None, signals: set[str]) -> bool:
        """Whether a cut just held gives the forwarder something to do sooner than it already will.
        Not when it waits for the cadence behind an earlier deadline (the forwarder wakes then, and
        take() hands out this cut too): at rest, one wake-up per send_interval instead of per flush."""
        if not self._confirmed or due <= now or before is None or before > due or self._wire_points is None:
            return True
        waiting = dict.fromkeys(signals, 0)  # points not sent yet, per signal of this cut
        for held in self._held.values():
            if not held.sent and held.signal in waiting:
                waiting[held.signal] += held.points
        return (max(waiting.values()) >= self._wire_points
                or len(self._held) * 2 >= self.max_batches or self._bytes * 2 >= self.max_bytes)

    def _admits(self, batches: int, size: int) -> bool:
        return (
            self._healthy
            and not self._stop.is_set()
            and len(self._held) + batches <= self.max_batches
            and self._bytes + size <= self.max_bytes
            and self._backlog() == 0
        )

    def release_after(self, tokens: Sequence[tuple[Durable, int]]) -> None:
        """Tokens of a cut written to the spool: released once every earlier cut is durable too."""
        with self._lock:
            self._cuts.append(_Cut(set(), list(tokens)))
            self._release()

    # -- the forwarder's side -----------------------------------------------------------------

    def take(self, signal: str, max_points: int) -> list[Held]:
        """The oldest unsent held batches of `signal` (at most `max_points` points, at least one
        batch), once any of them is due, or they fill `max_points` or half the hold, or the agent
        stops, or the upstream never said ok yet (an upstream away at start is found at once, not
        after a cadence); marked sent."""
        with self._lock:
            self._wire_points = max_points
            unsent = [h for h in self._held.values() if h.signal == signal and not h.sent]
            if not unsent:
                return []
            now = self._clock()
            # Also due once they fill a wire batch, or half the hold: a short flush_interval must
            # not fill the hold while waiting for the cadence (that would spill to disk).
            due = (self._stop.is_set() or not self._confirmed or any(h.due <= now for h in unsent)
                   or sum(h.points for h in unsent) >= max_points
                   or len(self._held) * 2 >= self.max_batches or self._bytes * 2 >= self.max_bytes)
            if not due:
                return []
            out = [unsent[0]]
            points = unsent[0].points
            for held in unsent[1:]:
                if points + held.points > max_points:
                    break
                out.append(held)
                points += held.points
            for held in out:
                held.sent = True
            return out

    def is_held(self, key: int) -> bool:
        return key >= HELD_BASE

    def acked(self, key: int) -> int | None:
        """The upstream acknowledged `key`: it is durable. Returns the spool id of its spilled copy
        (to delete), if it had been spilled meanwhile."""
        with self._lock:
            self._healthy = self._confirmed = True
            spool_id = self._spilled.pop(key, None)
            held = self._held.pop(key, None)
            if held is not None:
                self._bytes -= len(held.payload)
                held.durable = True
                self._sent.inc("acked")
                self._done(key)
            return spool_id

    def resend(self, key: int) -> None:
        """A verdict that asks for an immediate resend (stream rotation): hand it out again."""
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held.sent = False

    def failed(self) -> None:
        """The upstream answered anything but ok: it is not healthy; everything held goes to disk."""
        with self._lock:
            self._healthy = False
            self.spill("failed")

    def healthy(self, ok: bool) -> None:
        with self._lock:
            self._healthy = ok
            self._confirmed = self._confirmed or ok

    def spool_id_of(self, key: int) -> int | None:
        with self._lock:
            return self._spilled.get(key)

    def flying(self, spool_id: int) -> bool:
        """A spooled batch whose held copy is still in flight (the forwarder must not send it twice)."""
        with self._lock:
            return spool_id in self._spilled.values()

    def forget(self, key: int) -> None:
        """Its flight ended without an ack (retried from the spool from now on)."""
        with self._lock:
            self._spilled.pop(key, None)

    def deadline(self) -> float | None:
        """Monotonic time of the next thing to do: an unsent batch due, or a batch timing out."""
        with self._lock:
            now = self._clock()
            times = [h.due + self.timeout_s for h in self._held.values()]
            # Past due and unsent means the window is full: a verdict wakes the forwarder, not this.
            times += [h.due for h in self._held.values() if not h.sent and h.due > now]
            return min(times, default=None)

    def spill_due(self) -> None:
        """Spill if the oldest batch timed out or the agent is stopping. Raises SpoolFault."""
        with self._lock:
            if not self._held:
                return
            if self._stop.is_set():
                self.spill("stopping")
                return
            now = self._clock()
            if any(now >= h.due + self.timeout_s for h in self._held.values()):
                self.spill("timeout")

    def spill(self, reason: str) -> None:
        """Write every held batch to the spool in cut order. On a SpoolFault the rest stay held."""
        with self._lock:
            for key in list(self._held):
                held = self._held[key]
                spool_id = self._append(held.signal, held.payload, held.points)  # may raise SpoolFault
                del self._held[key]
                self._bytes -= len(held.payload)
                held.durable = True
                if spool_id is not None and held.sent:
                    self._spilled[key] = spool_id
                self._sent.inc(reason)
                self._done(key)
        self._wake()  # unsent ones now wait in the spool

    # -- internals ----------------------------------------------------------------------------

    def _done(self, key: int) -> None:
        for cut in self._cuts:
            if key in cut.keys:
                cut.keys.discard(key)
                break
        self._release()

    def _release(self) -> None:
        """Release tokens of the oldest cuts whose batches are all durable, in cut order."""
        while self._cuts and not self._cuts[0].keys:
            cut = self._cuts.popleft()
            for ring, token in cut.tokens:
                ring.mark_durable(token)

    def held_count(self) -> int:
        with self._lock:
            return len(self._held)



def make_write_behind(spool: Spool, telemetry: Telemetry, stop: threading.Event, *, timeout_s: float,
                      send_interval_s: float, max_bytes: int) -> WriteBehind:
    """The hold for `[spool] mode = "write_behind"` (runtime wires it into batcher and forwarder).

    Plain values, not [spool]'s config: the spool stage names nothing of the wiring layer above it.
    """
    return WriteBehind(spool.append, lambda: spool.stats().files, telemetry, stop,
                       timeout_s=timeout_s, send_interval_s=send_interval_s, max_bytes=max_bytes)
