"""Fixtures and builders of the core tests: a Telemetry, a ring, a SourceContext."""

from __future__ import annotations

import threading

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
