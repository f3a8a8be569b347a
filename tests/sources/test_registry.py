"""A new source kind is one module plus one registry line: this file is that module (a toy kind),
and the test registers it, configures it in a TOML file, runs the agent and finds its points in
the spool and its keys in the reference config. Nothing else of the package is touched; the
wiring modules name no source kind at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar

import pytest

from edgecollect import configdoc
from edgecollect.batch import from_ipc
from edgecollect.config import load
from edgecollect.configtypes import Duration, Key, KeyDocs, Range
from edgecollect.errors import ConfigError
from edgecollect.model import Point, Series
from edgecollect.runtime import Agent
from edgecollect.sources.base import SourceContext
from edgecollect.sources.registry import KINDS, SourceKind, check_name, register, slug, unregister
from tests.support.wait import wait_until

PACKAGE = Path(__file__).resolve().parents[2] / "edgecollect"
_FAST = Duration(0.05)


# -- the toy kind: what a source module holds ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToyConfig:
    name: str = ""
    metric: str = "toy.count"
    every: Annotated[Duration, Range("10ms", "1h")] = _FAST

    KEY_DOCS: ClassVar[KeyDocs] = {
        "name": Key("Names this toy; empty: made from metric.", example='"one"'),
        "metric": "The metric this toy counts on.",
        "every": "How often it counts.",
    }

    def __post_init__(self) -> None:
        check_name(self.name)

    def default_name(self) -> str:
        return slug(self.metric)


class ToySource:
    def __init__(self, cfg: ToyConfig, ctx: SourceContext) -> None:
        self._cfg, self._ctx = cfg, ctx
        self._series = Series(cfg.metric, "1", "gauge", ())
        self._ticks = ctx.counter("ticks")

    def run(self) -> None:
        n = 0
        while not self._ctx.wait(self._cfg.every):
            n += 1
            self._ticks.inc()
            self._ctx.emit([Point(self._series, n)])


TOY = SourceKind("toy", f"{__name__}:ToyConfig", f"{__name__}:ToySource", "Toys that count, for a test.")


@pytest.fixture
def toy_kind() -> Iterator[SourceKind]:
    register(TOY)  # the registry's one line, made by the test
    try:
        yield TOY
    finally:
        unregister("toy")


# -- the acceptance test -------------------------------------------------------------------------


def test_a_toy_kind_registered_in_one_line_is_configured_run_spooled_and_documented(
    toy_kind: SourceKind, tmp_path: Path,
) -> None:
    conf = tmp_path / "agent.toml"
    conf.write_text(f"""
[agent]
state_dir = "{tmp_path / 'state'}"
clock = "assume_synced"
[batch]
flush_interval = "200ms"
[sources.host]
enabled = false
[[sources.toy]]
metric = "toy.apples"
[[sources.toy]]
name = "pears"
metric = "toy.pears"
""")
    cfg = load(conf)
    assert [c.metric for c in cfg.sources.toy] == ["toy.apples", "toy.pears"]
    agent = Agent(cfg)
    assert sorted(st.ctx.name for st in agent.sources) == ["self", "toy.pears", "toy.toy.apples"]
    agent.start()

    def spooled() -> set[str]:
        names: set[str] = set()
        for batch in agent.spool.list("metrics"):
            names.update(from_ipc(agent.spool.read(batch.id) or b"").column("name").to_pylist())
        return names

    try:
        wait_until(lambda: {"toy.apples", "toy.pears"} <= spooled(), 60, "both toys' points in the spool")
        counters = agent.telemetry.snapshot()
        assert counters["edgecollect.toy.ticks{source=toy.pears}"][""] > 0, counters.keys()
    finally:
        agent.shutdown()
        agent.close()

    reference = configdoc.render()
    assert "# [[sources.toy]]" in reference and "Toys that count, for a test." in reference
    for key in ("name", "metric", "every"):
        assert f"# {key} = " in reference.split("# [[sources.toy]]")[1]
    assert configdoc.undocumented(ToyConfig) == []


def test_a_toy_kind_gets_the_same_config_errors_as_any_source(toy_kind: SourceKind, tmp_path: Path) -> None:
    conf = tmp_path / "toys.toml"
    conf.write_text('[[sources.toy]]\nmetric = "a"\n[[sources.toy]]\nevery = "1ms"\n')
    with pytest.raises(ConfigError, match=r"toys.toml:4: sources.toy\[1\].every: expected"):
        load(conf)


def test_an_unregistered_kind_is_an_unknown_key(tmp_path: Path) -> None:
    assert "toy" not in KINDS
    conf = tmp_path / "gw.toml"
    conf.write_text('[sources.host]\nenabled = true\n\n[[sources.toy]]\nmetric = "a"\n')
    with pytest.raises(ConfigError, match=r"gw.toml:4: sources.toy: expected one of host, sysfs, mqtt, serial, "
                                          r"modbus, found unknown source kind"):
        load(conf)


def test_the_wiring_names_no_source_kind() -> None:
    """config, configdoc and runtime learn the kinds from the registry only: none of them imports a
    kind's module or spells a kind's name, so a new kind cannot need an edit there."""
    allowed = {"edgecollect.sources.base", "edgecollect.sources.registry", "edgecollect.sources.selftelemetry"}
    kinds = set(KINDS)
    for module in ("config.py", "configdoc.py", "runtime.py"):
        tree = ast.parse((PACKAGE / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("edgecollect.sources"):
                assert node.module in allowed, f"{module} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("edgecollect.sources.") and a.name not in allowed
                               for a in node.names), f"{module} imports a source module"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in kinds and not node.value.startswith("edgecollect.sources."), \
                    f"{module} names {node.value!r}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in kinds, f"{module} reads .{node.attr}"


def test_sources_reach_the_pipeline_only_through_their_context() -> None:
    """No source module touches `ctx.ring` (or any `.ring`): SourceContext is the one door, so a
    change of the buffer stage never reaches into a source."""
    package = Path(__file__).resolve().parents[2] / "edgecollect" / "sources"
    reached = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "base.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "ring":
                reached.append(f"{path.relative_to(package)}:{node.lineno}")
    assert reached == []
