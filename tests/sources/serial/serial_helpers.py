"""Shared pieces of the serial tests: a real SourceContext, readers of what reached the ring,
the golden vectors file, a source thread runner, and a pty pair that can be unplugged."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecollect.buffer import FLAG_INT, Ring
from edgecollect.clock import Clock
from edgecollect.model import LogRecord, SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.sources.serial import SerialConfig, SerialSource
from edgecollect.telemetry import Telemetry
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
GOLDEN_PATH = REPO / "firmware-bridges" / "slf1" / "golden.json"


def golden() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
    return data


def b(text: str) -> bytes:
    """golden.json strings map to bytes one character per byte."""
    return text.encode("latin-1")


def make_ctx(name: str = "serial.test", capacity: int = 1_000_000) -> SourceContext:
    telemetry = Telemetry()
    ring = Ring(
        name,
        capacity,
        "drop_oldest",
        telemetry.counter("buffer", "dropped", "policy"),
        telemetry.counter("buffer", "logs_dropped", "policy"),
        max_log_bytes=64 << 20,
    )
    return SourceContext(
        name=name,
        kind="serial",
        ring=ring,
        stop=threading.Event(),
        series=SeriesRegistry(),
        telemetry=telemetry,
        clock=Clock(),
    )


@dataclass(frozen=True)
class Sample:
    metric: str
    unit: str
    attributes: dict[str, Any]
    value: int | float


class Collected:
    """Accumulates what the source put in its ring (drain is destructive, so keep it all)."""

    def __init__(self, ctx: SourceContext) -> None:
        self.ctx = ctx
        self.samples: list[Sample] = []
        self.logs: list[LogRecord] = []
        self._lock = threading.Lock()

    def pull(self) -> None:
        with self._lock:
            d = self.ctx.ring.drain()
            for i, sid in enumerate(d.series_ids):
                s = self.ctx.series.series(sid)
                value: int | float = d.ints[i] if d.flags[i] & FLAG_INT else d.floats[i]
                self.samples.append(Sample(s.name, s.unit, dict(s.attributes), value))
            self.logs.extend(d.logs)

    def wait_for(self, cond: Callable[[Collected], bool], timeout: float = 10.0, what: str = "") -> None:
        """Bounded wait for a condition on what arrived; fails with `what` if it never holds."""
        def arrived() -> bool:
            self.pull()
            return cond(self)

        wait_until(arrived, timeout, lambda: f"{what or cond}: {len(self.samples)} samples, "
                   f"counters {counters(self.ctx)}", pause_s=0.01)


def counters(ctx: SourceContext) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for c in ctx.telemetry.counters():
        if c.name.startswith("edgecollect.serial."):
            out[c.name.removeprefix("edgecollect.serial.")] = {k: v for k, v in c.snapshot().items() if v}
    return out


def frames(ctx: SourceContext) -> dict[str, int]:
    return counters(ctx).get("frames", {})


@contextmanager
def running(cfg: SerialConfig, ctx: SourceContext) -> Iterator[SerialSource]:
    source = SerialSource(cfg, ctx)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            source.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=target, name="serial-test", daemon=True)
    thread.start()
    try:
        yield source
    finally:
        ctx.stop.set()
        thread.join(10)
        assert not thread.is_alive(), "SerialSource.run did not return after stop"
        assert not errors, f"SerialSource.run raised {errors[0]!r}"


class Pty:
    """A pty pair whose slave is reachable under a stable symlink, like /dev/serial/by-id/..."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        tmp = self.link.with_suffix(".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(self.slave))
        tmp.replace(self.link)

    def unplug(self) -> None:
        self.link.unlink(missing_ok=True)
        os.close(self.master)
        os.close(self.slave)
        self.master = self.slave = -1

    def write(self, data: bytes) -> None:
        os.write(self.master, data)
