from __future__ import annotations

import time
from pathlib import Path

import psutil

from edgecollect.sources.host import HostConfig, HostSource, read_temperatures, read_throttling
from edgecollect.telemetry import Telemetry
from tests.core.conftest import make_context

PI_TREE = Path(__file__).parent / "host_tree" / "rpi4"


def test_thermal_zone_from_sys_is_a_temperature_in_celsius() -> None:
    points = [p for p in read_temperatures(PI_TREE) if dict(p.series.attributes).get("hw.id") == "thermal_zone0"]
    assert len(points) == 1
    assert points[0].value == 48.312
    assert points[0].series.unit == "Cel" and points[0].series.kind == "gauge"
    assert dict(points[0].series.attributes)["hw.name"] == "cpu-thermal"


def test_pi_under_voltage_and_throttling_flags_now_and_since_boot() -> None:
    flags = {dict(p.series.attributes)["hw.rpi.flag"]: p.value for p in read_throttling(PI_TREE)}
    # 0x50005: under-voltage and throttled now; under-voltage and throttled since boot.
    assert flags == {
        "under_voltage": 1,
        "arm_frequency_capped": 0,
        "throttled": 1,
        "soft_temperature_limit": 0,
        "under_voltage_occurred": 1,
        "arm_frequency_capped_occurred": 0,
        "throttled_occurred": 1,
        "soft_temperature_limit_occurred": 0,
    }


def test_no_throttling_metrics_where_the_firmware_has_none(tmp_path: Path) -> None:
    assert read_throttling(tmp_path) == []


def test_collect_on_this_host_uses_semantic_convention_names_and_kinds() -> None:
    telemetry = Telemetry()
    source = HostSource(HostConfig(root=str(PI_TREE)), make_context(telemetry))
    time.sleep(0.1)
    points = source.collect()
    by_name: dict[str, set[str]] = {}
    for p in points:
        by_name.setdefault(p.series.name, set()).add(p.series.kind)
    for name in (
        "system.cpu.utilization",
        "system.memory.usage",
        "system.memory.utilization",
        "system.filesystem.usage",
        "system.network.io",
        "system.uptime",
        "hw.temperature",
        "hw.rpi.throttled",
        "process.memory.usage",
        "process.cpu.time",
        "system.cpu.load_average.1m",
    ):
        assert name in by_name, name
    assert by_name["system.network.io"] == {"cumulative"}
    assert by_name["system.cpu.utilization"] == {"gauge"}
    assert by_name["system.memory.usage"] == {"updown"}
    boot_ns = int(psutil.boot_time() * 1e9)
    assert all(p.start_time_ns == boot_ns for p in points if p.series.name == "system.network.io")
    per_cpu = [p for p in points if p.series.name == "system.cpu.utilization" and p.series.attributes]
    assert len(per_cpu) == psutil.cpu_count()
    assert all(0.0 <= p.value <= 1.0 for p in per_cpu)
    mountpoints = {
        dict(p.series.attributes)["system.filesystem.mountpoint"]
        for p in points
        if p.series.name == "system.filesystem.usage"
    }
    assert "/proc" not in mountpoints and "/sys" not in mountpoints
    reads = telemetry.find("edgecollect.test.reads", source="test")
    assert reads is not None and reads.value("ok") == 9 and reads.total() == 9


def test_counters_reach_the_ring_with_their_start_time() -> None:
    telemetry = Telemetry()
    ctx = make_context(telemetry)
    source = HostSource(HostConfig(), ctx)
    ctx.emit(source.collect())
    drained = ctx.ring.drain()
    ids = {ctx.series.series(i).name: i for i in drained.series_ids}
    assert ctx.series.start_time_ns(ids["system.network.io"]) == int(psutil.boot_time() * 1e9)
    assert ctx.series.start_time_ns(ids["system.cpu.utilization"]) == 0
