"""What the forwarder sends next: consecutive batches of one signal, gathered up to `max_points`.

Owns the order in which batches leave: the spool's backlog first, oldest first (design.md: the
backlog must leave before anything newer, or one series' points would arrive out of order), then
the write-behind hold (writebehind.py) once its batches are due. Consecutive batches with the same
resource and boot are gathered into one wire batch of up to `max_points` (coalesce.py): a backlog
of 10-s batches is replayed as 5,000-point batches, not as small as it was cut.

A batch named *solo* (a member of a coalesced batch the upstream rejected) is always sent alone, so
that a poison batch is found and quarantined without taking its neighbours with it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgecollect.coalesce import key_of
from edgecollect.exporters.contracts import Outgoing, Signal

if TYPE_CHECKING:
    from edgecollect.spool import Spool
    from edgecollect.spoolfile import SpooledBatch
    from edgecollect.writebehind import WriteBehind

log = logging.getLogger(__name__)

PREFETCH = 256  # spooled batches listed ahead per signal


class Gatherer:
    def __init__(self, spool: Spool, behind: WriteBehind | None, max_points: int,
                 load: Callable[[int, Signal, int], Outgoing | None]) -> None:
        self._spool = spool
        self._behind = behind
        self.max_points = max_points
        self._load = load
        self.queue: dict[str, deque[SpooledBatch]] = {"metrics": deque(), "logs": deque()}
        self.solo: set[int] = set()

    def next(self, signal: Signal, taken: Callable[[int], bool], window: int) -> list[Outgoing]:
        """The next batches to send as one (empty: nothing to send now)."""
        return self._spooled(signal, taken, window) or self._held(signal)

    def _spooled(self, signal: Signal, taken: Callable[[int], bool], window: int) -> list[Outgoing]:
        queue = self.queue[signal]
        out: list[Outgoing] = []
        points = 0
        while True:
            if not queue:
                if out:
                    break  # a fresh listing would hold what `out` already took
                # Listing sorts the whole spool index: fetch ahead so a long backlog costs one
                # sort per PREFETCH batches, not one per batch.
                listed = self._spool.oldest(window + PREFETCH, signal)
                queue.extend(b for b in listed if not taken(b.id))
                if not queue:
                    break
            spooled = queue[0]
            if taken(spooled.id):
                queue.popleft()
                continue
            if out and (points + spooled.points > self.max_points or spooled.id in self.solo):
                break
            queue.popleft()
            item = self._load(spooled.id, signal, spooled.points)
            if item is None:
                continue
            if out and key_of(out[0].batch) != key_of(item.batch):
                queue.appendleft(spooled)  # another boot or resource: the next wire batch
                break
            out.append(item)
            points += item.points
            if item.spool_id in self.solo:
                break
        return out

    def _held(self, signal: Signal) -> list[Outgoing]:
        from edgecollect.batch import from_ipc

        if self._behind is None:
            return []
        out: list[Outgoing] = []
        taken = self._behind.take(signal, self.max_points)
        for i, held in enumerate(taken):
            batch = held.take_batch()  # the batcher's own batch when it has one: no second decode
            item = Outgoing(held.key, signal, from_ipc(held.payload) if batch is None else batch, held.points)
            if out and key_of(out[0].batch) != key_of(item.batch):
                for later in taken[i:]:
                    self._behind.resend(later.key)  # another boot or resource: the next wire batch
                break
            out.append(item)
        return out

    def clear(self, signal: Signal) -> None:
        self.queue[signal].clear()
