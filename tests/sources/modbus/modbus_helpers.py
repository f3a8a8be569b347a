"""A real SourceContext for the Modbus tests, readers of what reached its ring, counter views."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from edgecollect.buffer import FLAG_INT, Ring
from edgecollect.clock import Clock
from edgecollect.model import LogRecord, SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Telemetry
from tests.support.wait import wait_until


def make_ctx(name: str = "modbus.test", kind: str = "modbus") -> SourceContext:
    telemetry = Telemetry()
    ring = Ring(name, 1_000_000, "drop_oldest", telemetry.counter("buffer", "dropped", "policy"),
                telemetry.counter("buffer", "logs_dropped", "policy"), max_log_bytes=16 << 20)
    return SourceContext(name, kind, ring, threading.Event(), SeriesRegistry(), telemetry, Clock())


@dataclass(frozen=True)
class Sample:
    metric: str
    unit: str
    kind: str
    attributes: dict[str, Any]
    value: int | float


class Collected:
    """Everything the source put in its ring (a drain is destructive, so keep it all)."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.samples: list[Sample] = []
        self.logs: list[LogRecord] = []

    def pull(self) -> Collected:
        d = self.ctx.ring.drain()
        for i, sid in enumerate(d.series_ids):
            s = self.ctx.series.series(sid)
            value: int | float = d.ints[i] if d.flags[i] & FLAG_INT else d.floats[i]
            self.samples.append(Sample(s.name, s.unit, s.kind, dict(s.attributes), value))
        self.logs.extend(d.logs)
        return self

    def of_unit(self, unit: int) -> list[Sample]:
        return [s for s in self.samples if s.attributes.get("modbus.unit") == unit]

    def log_texts(self) -> list[str]:
        return [str(r.body) for r in self.logs]

    def wait_for(self, cond: Callable[[Collected], bool], what: str, timeout: float = 30.0) -> None:
        """Bounded wait for a condition on what arrived; fails with `what` if it never holds."""
        wait_until(lambda: cond(self.pull()), timeout, lambda: f"{what}: {len(self.samples)} samples, "
                   f"counters {requests(self.ctx)}, logs {self.log_texts()}")


def requests(ctx: SourceContext, unit: int | None = None) -> dict[int, dict[str, int]]:
    """edgecollect.modbus.requests per unit: {unit: {outcome: n}} (zero outcomes left out)."""
    out: dict[int, dict[str, int]] = {}
    for c in ctx.telemetry.counters():
        if c.name == "edgecollect.modbus.requests":
            u = int(dict(c.points()[0].series.attributes)["modbus.unit"]) if c.points() else -1
            if unit is None or u == unit:
                out[u] = {k: v for k, v in c.snapshot().items() if v}
    return out


@contextmanager
def running(source: Any, ctx: SourceContext) -> Iterator[None]:
    errors: list[BaseException] = []

    def target() -> None:
        try:
            source.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="modbus-test", daemon=True)
    thread.start()
    try:
        yield
    finally:
        ctx.stop.set()
        thread.join(20)
        assert not thread.is_alive(), "ModbusSource.run did not return after stop"
        assert not errors, f"ModbusSource.run raised {errors[0]!r}"
