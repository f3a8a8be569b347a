"""filter, attributes and transform: exact outputs on known inputs; selection; own telemetry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from edgecollect.buffer import Ring
from edgecollect.model import Point, Series
from edgecollect.processors import ProcessingRing
from tests.processors.pipe import gauge, pipe


def test_filter_include_then_exclude_and_counts_each_reason() -> None:
    p = pipe("""
[[processors]]
kind = "filter"
include = ["sensor.*"]
exclude = ["sensor.debug*"]
""")
    p.emit(gauge("sensor.temp", 20.5, 1), gauge("sensor.debug.rssi", -70, 1), gauge("cpu", 3.0, 1))
    assert p.out() == [("sensor.temp", 1.0, 20.5)]
    assert p.dropped("filter.0") == {"excluded": 1, "not_included": 1}


def test_filter_where_acts_only_on_matching_attributes() -> None:
    p = pipe("""
[[processors]]
kind = "filter"
exclude = ["*"]
where = { "device.id" = "test-*" }
""")
    p.emit(
        gauge("t", 1.0, 1, **{"device.id": "test-7"}), gauge("t", 2.0, 1, **{"device.id": "barn-1"}), gauge("t", 3.0, 1)
    )
    assert p.out() == [("t", 1.0, 2.0), ("t", 1.0, 3.0)]


def test_attributes_set_delete_rename_make_one_new_series() -> None:
    p = pipe("""
[[processors]]
kind = "attributes"
set = { site = "barn-2" }
delete = ["mqtt.topic"]
rename = { "device.id" = "sensor.id" }
""")
    for t in (1, 2):
        p.emit(gauge("t", 20.0 + t, t, **{"device.id": "d1", "mqtt.topic": "x/y"}))
    table = p.drain_table()
    assert [r["attributes"] for r in table] == ['{"sensor.id":"d1","site":"barn-2"}'] * 2
    assert [r["double_value"] for r in table] == [21.0, 22.0]
    assert len(p.registry) == 2  # the input series and its one re-attributed series


def test_transform_renames_converts_units_and_scales() -> None:
    p = pipe("""
[[processors]]
kind = "transform"
metrics = ["temp"]
rename = { "temp" = "sensor.temperature" }
scale = 0.5555555555555556
offset = -17.77777777777778
unit = "Cel"
""")
    p.emit(gauge("temp", 212, 1, unit="[degF]"), gauge("temp", 32.0, 2, unit="[degF]"), gauge("rh", 40.0, 2))
    rows = p.out()
    assert [(n, t) for n, t, _ in rows] == [("sensor.temperature", 1.0), ("sensor.temperature", 2.0), ("rh", 2.0)]
    assert abs(rows[0][2] - 100.0) < 1e-9 and abs(rows[1][2]) < 1e-9 and rows[2][2] == 40.0
    assert {
        p.registry.series(i).unit for i in range(len(p.registry)) if p.registry.series(i).name.startswith("sensor")
    } == {"Cel"}


def test_nan_is_rejected_before_the_chain() -> None:
    p = pipe("""
[[processors]]
kind = "transform"
scale = 2.0
""")
    assert p.emit(gauge("t", float("nan"), 1), gauge("t", 1.5, 2)) == 1
    assert p.out() == [("t", 2.0, 3.0)]


def test_own_telemetry_untouched_unless_named() -> None:
    toml = """
[[processors]]
kind = "filter"
exclude = ["*"]
sources = ["*"]
"""
    assert type(pipe(toml, source="self").ring) is Ring  # "*" does not name the agent's own
    assert isinstance(pipe(toml, source="host").ring, ProcessingRing)
    named = pipe(toml.replace('sources = ["*"]', 'sources = ["self"]'), source="self")
    assert isinstance(named.ring, ProcessingRing)
    named.emit(Point(Series("edgecollect.x", "1", "cumulative", ()), 3, 5))
    assert named.out() == []
    default = pipe(toml.replace('sources = ["*"]\n', ""), source="self")
    assert type(default.ring) is Ring


def test_source_globs_select_sources() -> None:
    toml = """
[[processors]]
kind = "filter"
exclude = ["*"]
sources = ["serial.*"]
"""
    assert type(pipe(toml, source="mqtt.0").ring) is Ring
    assert isinstance(pipe(toml, source="serial.1").ring, ProcessingRing)


def test_config_without_processors_imports_nothing_of_the_package() -> None:
    code = (
        "import sys\n"
        "from edgecollect.config import loads\n"
        "from edgecollect.runtime import Agent\n"
        "import tempfile\n"
        "d = tempfile.mkdtemp()\n"
        "Agent(loads(f'[agent]\\nstate_dir = \"{d}\"\\n'))\n"
        "bad = [m for m in sys.modules if m.startswith(('edgecollect.processors', 'edgecollect.downsample'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_agent_runs_the_chain_and_flushes_it_into_the_spool_at_shutdown(tmp_path: Path) -> None:
    from edgecollect.batch import from_ipc
    from edgecollect.config import loads
    from edgecollect.runtime import Agent
    from tests.support.wait import eventually

    cfg = loads(f"""
[agent]
state_dir = "{tmp_path}"
self_interval = "1s"
[batch]
flush_interval = "1s"
[sources.host]
interval = "1s"

[[processors]]
kind = "filter"
exclude = ["process.*"]

[[processors]]
kind = "aggregate"
metrics = ["system.cpu.load_average.1m"]
window = "1h"
functions = ["mean", "count"]
""")
    agent = Agent(cfg)
    assert {st.ctx.name: type(st.ctx.ring).__name__ for st in agent.sources} == {
        "host": "ProcessingRing",
        "self": "Ring",
    }
    agent.start()
    try:
        assert eventually(lambda: agent.spool.stats().points > 0, 30)
    finally:
        agent.shutdown(10)
    names: dict[str, int] = {}
    for batch in agent.spool.list("metrics"):
        payload = agent.spool.read(batch.id)
        assert payload is not None
        for name in from_ipc(payload).column("name").to_pylist():
            names[name] = names.get(name, 0) + 1
    assert not [n for n in names if n.startswith("process.")]
    assert "system.cpu.load_average.1m" not in names  # aggregated: the hour's window was open at shutdown
    assert names["system.cpu.load_average.1m.mean"] == names["system.cpu.load_average.1m.count"] > 0
    assert "edgecollect.processor.dropped" in names  # the drops travel like every other counter
