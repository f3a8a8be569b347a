"""Bounded waits for an outcome. Tests assert on the outcome, never on how long it took: the
timeouts are generous bounds for a loaded 2-core machine, not expectations."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout_s: float, what: str | Callable[[], str],
               pause_s: float = 0.02) -> None:
    """Poll `condition` until it holds; fail the test with `what` (a text, or a function giving one
    at the moment of failure) if it never does within `timeout_s`. Polls fast at first (an outcome
    often follows at once), then every `pause_s`."""
    deadline = time.monotonic() + timeout_s
    pause = min(0.0002, pause_s)
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {said}")
        time.sleep(pause)
        pause = min(pause_s, pause * 2)


def eventually(condition: Callable[[], object], timeout_s: float = 15.0) -> bool:
    """Whether `condition` held within `timeout_s`, for `assert eventually(...), details`."""
    try:
        wait_until(condition, timeout_s, "", pause_s=0.1)
    except AssertionError:
        return False
    return True
