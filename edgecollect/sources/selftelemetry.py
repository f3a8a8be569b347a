"""The agent's own counters as a source: they take the same path as any sensor reading."""

from __future__ import annotations

from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Telemetry


class SelfTelemetrySource:
    name = "self"

    def __init__(self, telemetry: Telemetry, interval_s: float, ctx: SourceContext) -> None:
        self._telemetry = telemetry
        self._interval_s = interval_s
        self._ctx = ctx

    def sample(self) -> int:
        return self._ctx.emit(self._telemetry.points())

    def run(self) -> None:
        while not self._ctx.wait(self._interval_s):
            self.sample()
