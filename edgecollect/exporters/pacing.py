"""The forwarder's pacing: retry backoff, the points/s cap, and the drain rate it reports."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable


def backoff_delay(failures: int, initial_s: float, max_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with jitter in [delay/2, delay], so gateways don't retry in step."""
    delay = min(max_s, initial_s * 2.0 ** min(failures - 1, 30))
    return rng.uniform(delay / 2, delay)


class TokenBucket:
    """Points/s cap. A batch is indivisible, so the bucket may go into debt and then waits it off."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = rate
        self._at = clock()

    def wait_s(self) -> float:
        """Seconds until a batch may go (0 when now)."""
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return 0.0 if self._tokens > 0 else -self._tokens / self.rate

    def take(self, points: int) -> None:
        self._tokens -= points


class DrainRate:
    """Points acknowledged per second over the last `window_s`."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._events: deque[tuple[float, int]] = deque()
        self._start = clock()
        self._lock = threading.Lock()

    def add(self, points: int) -> None:
        with self._lock:
            self._events.append((self._clock(), points))

    def rate(self) -> float:
        now = self._clock()
        with self._lock:
            while self._events and self._events[0][0] < now - self._window:
                self._events.popleft()
            total = sum(p for _, p in self._events)
        span = min(self._window, max(now - self._start, 1e-3))
        return total / span
