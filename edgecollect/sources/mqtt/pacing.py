"""When an MQTT source asks the batcher for an early cut, so that owed acks flow without a batch
per message.

Acks wait for durability, and the broker stops sending once its in-flight window is full (MQTT 5:
our Receive Maximum; 3.1.1: the broker's own limit, mosquitto `max_inflight_messages` = 20 by
default, unknown to us). Waiting for the batcher's tick would then stall a busy stream; cutting
whenever the stream pauses for a moment (the first design) made a batch, and an fsync, of every
message of a slow sensor — the SD-card wear the agent exists to avoid. So:

- *Stalled*: acks are owed and the stream has been silent for several of its usual gaps (at least
  `MIN_SILENCE_S`). A sensor every few seconds is never "stalled"; its messages wait for the tick.
- *Window learned*: when two stalls in a row end with the same number owed, that number is the
  broker's window; from then on a cut is asked for at half of it, before the stream stops.
- *Half of max_unacked* owed always asks for a cut (the MQTT 5 window is `max_unacked`).
"""

from __future__ import annotations

MIN_SILENCE_S = 0.05  # a stall is never shorter than this
SILENT_GAPS = 8  # ... and lasts this many typical gaps between messages
GAP_WEIGHT = 0.2  # exponential average of the gap between messages
MAX_GAP_S = 60.0  # a gap longer than this says nothing more about the stream's pace


class FlushPacer:
    def __init__(self, max_unacked: int) -> None:
        self._max_unacked = max_unacked
        self._last_message: float | None = None
        self._gap_s: float | None = None  # unknown until a second message; one message never stalls
        self._stall_counted = False  # the current silence was already taken as a stall
        self._last_stall_owed = 0
        self.window: int | None = None  # the broker's in-flight window, once learned

    def message(self, now: float) -> None:
        """A message arrived at `now` (monotonic seconds)."""
        if self._last_message is not None:
            gap = min(max(now - self._last_message, 0.0), MAX_GAP_S)
            self._gap_s = gap if self._gap_s is None else self._gap_s + GAP_WEIGHT * (gap - self._gap_s)
        self._last_message = now
        self._stall_counted = False

    def reason(self, owed: int, now: float) -> str | None:
        """Why a cut should be asked for now ("window", "max_unacked", "stalled"), or None."""
        if owed <= 0:
            return None
        if self.window is not None and owed >= max(1, self.window // 2):
            return "window"
        if owed >= max(1, self._max_unacked // 2):
            return "max_unacked"
        if self._last_message is None or self._gap_s is None:
            return None
        if now - self._last_message < max(MIN_SILENCE_S, SILENT_GAPS * self._gap_s):
            return None
        if not self._stall_counted:
            self._stall_counted = True
            if owed == self._last_stall_owed and owed > 1:
                self.window = owed
            self._last_stall_owed = owed
        return "stalled"
