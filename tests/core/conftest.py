from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.model import SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Telemetry


@pytest.fixture
def telemetry() -> Telemetry:
    return Telemetry()


def make_ring(
    telemetry: Telemetry, capacity: int = 100, overflow: str = "drop_oldest", max_log_bytes: int = 1 << 20
) -> Ring:
    return Ring(
        "test",
        capacity,
        overflow,  # type: ignore[arg-type]
        telemetry.counter("buffer", "dropped", "policy"),
        telemetry.counter("buffer", "logs_dropped", "policy"),
        max_log_bytes=max_log_bytes,
    )


def make_context(telemetry: Telemetry, capacity: int = 10_000, name: str = "test") -> SourceContext:
    return SourceContext(
        name, "test", make_ring(telemetry, capacity), threading.Event(), SeriesRegistry(), telemetry, Clock()
    )


def wait_for(predicate: Callable[[], object], timeout_s: float = 15.0) -> bool:
    """Bounded wait for a condition; tests assert on the outcome, never on how long it took."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False
