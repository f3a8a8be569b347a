"""SourceContext's doors, each against a real Ring: durability callbacks, token notes, flush
requests (counted), the shared backoff, and the counting rate-limited event log."""

from __future__ import annotations

import logging
import random

import pytest

from edgecollect.sources.base import Backoff, EventLog
from edgecollect.telemetry import Telemetry
from tests.sources.mqtt.mqtt_support import make_context


def test_on_durable_note_token_and_request_flush_go_through_the_context() -> None:
    ctx = make_context("mqtt.doors")
    durable: list[int] = []
    ctx.on_durable(durable.append)
    ctx.note_token(7)  # a message that buffered nothing
    drained = ctx.ring.drain()  # type: ignore[attr-defined]
    assert drained.max_token == 7
    ctx.ring.mark_durable(drained.max_token)  # type: ignore[attr-defined]  # what the batcher does
    assert durable == [7]

    assert not ctx.ring.flush_requested()  # type: ignore[attr-defined]
    ctx.request_flush("window")
    ctx.request_flush("window")
    ctx.request_flush("stopping")
    assert ctx.ring.flush_requested()  # type: ignore[attr-defined]
    counter = ctx.telemetry.find("edgecollect.mqtt.flush_requests", source="mqtt.doors")
    assert counter is not None and counter.snapshot() == {"window": 2, "stopping": 1}


def test_backoff_doubles_to_its_cap_with_jitter_and_starts_again_after_reset() -> None:
    backoff = Backoff(0.1, 1.0, low=0.5, high=1.0, rng=random.Random(7))
    bases = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    delays = [backoff.next() for _ in bases]
    for base, delay in zip(bases, delays, strict=True):
        assert base * 0.5 <= delay <= base
    assert len(set(delays)) == len(delays), "jittered, not a fixed ladder"
    backoff.reset()
    assert 0.05 <= backoff.next() <= 0.1
    # Jitter both ways (Modbus units that fell silent together retry apart), and a first step
    # beyond the cap is the cap.
    wide = Backoff(10.0, 5.0, low=0.9, high=1.1, rng=random.Random(1))
    assert all(4.5 <= wide.next() <= 5.5 for _ in range(20))


def test_context_backoff_uses_the_shared_backoff() -> None:
    backoff = make_context().backoff(0.2, 0.4)
    assert isinstance(backoff, Backoff)
    assert [0.1 <= backoff.next() <= 0.2, 0.2 <= backoff.next() <= 0.4, 0.2 <= backoff.next() <= 0.4] == [True] * 3


def test_event_log_counts_every_event_and_logs_each_at_most_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    telemetry = Telemetry()
    counter = telemetry.counter("toy", "events", "event", base={"source": "toy.a"})
    events = EventLog(counter, logging.getLogger("edgecollect.toy"), every_s=3600)
    with caplog.at_level(logging.DEBUG, logger="edgecollect.toy"):
        assert events("refused", "toy: refused once")
        assert not events("refused", "toy: refused twice")
        assert not events("refused", "toy: refused thrice")
        assert events("lost", "toy: lost %d%%", 5, level=logging.ERROR)  # another event, its own allowance
    assert counter.snapshot() == {"refused": 3, "lost": 1}
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "toy: refused once"), (logging.ERROR, "toy: lost 5%")]

    # Once the interval is over, the next line says how many went unlogged.
    caplog.clear()
    events = EventLog(counter, logging.getLogger("edgecollect.toy"), every_s=0.0)
    events._last["x"] = float("inf")  # as if the first "x" had just been logged
    for _ in range(4):
        events("x", "toy: x")
    events._last["x"] = 0.0  # its interval is over
    with caplog.at_level(logging.WARNING, logger="edgecollect.toy"):
        assert events("x", "toy: x again at 100%")  # text without args is not %-formatted
    assert caplog.records[-1].getMessage() == "toy: x again at 100% (and 4 more x not logged)"


def test_the_context_event_log_is_counted_per_source() -> None:
    ctx = make_context("mqtt.events")
    ctx.event("connect_failed", "mqtt: broker away")
    ctx.event("connect_failed", "mqtt: broker away")
    counter = ctx.telemetry.find("edgecollect.mqtt.events", source="mqtt.events")
    assert counter is not None and counter.snapshot() == {"connect_failed": 2}
