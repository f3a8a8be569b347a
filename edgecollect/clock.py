"""Wall-clock time with an honesty flag.

Boards without a real-time clock boot at a stale date until NTP syncs (design.md invariant 7).
Every sample is stamped with the wall clock *and* a flag saying whether that clock was known to be
synchronised, so pre-sync samples can be marked and repaired later.
"""

from __future__ import annotations

import time
from collections.abc import Callable

# The flag bits stored per sample in rings and batches are the batch contract's.
from edgecollect.format import FLAG_CLOCK_UNSYNCED, FLAG_TIME_REPAIRED

__all__ = ["FLAG_CLOCK_UNSYNCED", "FLAG_TIME_REPAIRED", "Clock"]


class Clock:
    """The agent's notion of now. `synced` is a callable so a detector can be swapped in."""

    def __init__(self, synced: Callable[[], bool] | None = None) -> None:
        self._synced = synced or (lambda: True)

    def now_ns(self) -> int:
        return time.time_ns()

    def flags(self) -> int:
        return 0 if self._synced() else FLAG_CLOCK_UNSYNCED

    def stamp(self) -> tuple[int, int]:
        """(time_ns, flags) for a reading taken now."""
        return time.time_ns(), self.flags()
