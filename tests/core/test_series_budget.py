"""Series budgets: a source's own `max_series`, the shared pool, and self-telemetry's reserved share."""

from __future__ import annotations

from pathlib import Path

from edgecollect.config import loads
from edgecollect.model import REFUSED_BUDGET, REFUSED_SHARED, Point, Series, SeriesRegistry
from edgecollect.runtime import Agent


def _series(i: int, name: str = "sensor.flood") -> Series:
    return Series(name, "1", "gauge", (("device.id", f"d{i}"),))


def test_a_budget_caps_its_owner_and_counts_refusals() -> None:
    registry = SeriesRegistry(max_series=100)
    small = registry.budget("mqtt.0", 3)
    ids = [registry.intern(_series(i), budget=small) for i in range(5)]
    assert ids[:3] == [0, 1, 2] and ids[3:] == [REFUSED_BUDGET, REFUSED_BUDGET]
    assert (small.used, small.refused) == (3, 2)
    assert registry.intern(_series(0), budget=small) == 0  # known series are never refused
    other = registry.budget("serial.0")
    assert registry.intern(_series(9), budget=other) == 3  # another owner's budget is its own


def test_the_shared_pool_refuses_sources_but_not_a_reserved_budget() -> None:
    registry = SeriesRegistry(max_series=2)
    source = registry.budget("mqtt.0")
    own = registry.budget("self", 5, reserved=True)
    assert [registry.intern(_series(i), budget=source) for i in range(3)] == [0, 1, REFUSED_SHARED]
    assert registry.intern(_series(0, "edgecollect.mqtt.messages"), budget=own) == 2
    assert registry.intern(_series(1, "edgecollect.mqtt.messages"), budget=own) == 3
    assert registry.intern(_series(9), budget=source) == REFUSED_SHARED  # reserved series are not charged


class _Idle:
    def run(self) -> None:
        pass


def test_self_telemetry_keeps_its_series_after_a_cardinality_flood(tmp_path: Path) -> None:
    cfg = loads(f"[agent]\nstate_dir = '{tmp_path}'\nmax_series = 50\n[sources.host]\nenabled = false\n")
    agent = Agent(cfg)
    flood = agent.add_source("flood", "mqtt", lambda ctx: _Idle())
    accepted = flood.emit([Point(_series(i), 1.0) for i in range(200)])
    assert accepted == 50
    rejected = agent.telemetry.find("edgecollect.mqtt.points_rejected", source="flood")
    assert rejected is not None and rejected.value("cardinality") == 150
    # Every edgecollect.* series is new here, the rejection counter that reports the flood included.
    own = agent.telemetry.points()
    assert agent.self_ctx.emit(own) == len(own)
    refused = agent.telemetry.find("edgecollect.self.points_rejected", source="self")
    assert refused is not None and refused.total() == 0


def test_a_source_max_series_holds_that_source_only(tmp_path: Path) -> None:
    cfg = loads(f"[agent]\nstate_dir = '{tmp_path}'\n[sources.host]\nenabled = false\n")
    agent = Agent(cfg)
    noisy = agent.add_source("noisy", "mqtt", lambda ctx: _Idle(), max_series=10)
    quiet = agent.add_source("quiet", "mqtt", lambda ctx: _Idle())
    assert noisy.emit([Point(_series(i, "noisy"), 1.0) for i in range(30)]) == 10
    assert quiet.emit([Point(_series(i, "quiet"), 1.0) for i in range(30)]) == 30
    rejected = agent.telemetry.find("edgecollect.mqtt.points_rejected", source="noisy")
    assert rejected is not None and rejected.value("max_series") == 20
