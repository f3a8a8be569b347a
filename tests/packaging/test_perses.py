"""The Perses fleet dashboard: generated JSON is committed, `percli lint` validates it against the
plugins' CUE schemas, and its queries name metrics the agent really emits.

percli and the plugin schemas come from packaging/perses/install-percli.sh (Go module proxy only,
cached in ~/.cache/edgecollect-perses; packaging/install-test-deps.sh runs it).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PERSES = ROOT / "packaging" / "perses"
DASHBOARD = PERSES / "edgecollect-fleet.json"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def percli() -> tuple[Path, Path]:
    cache = Path(
        os.environ.get("EDGECOLLECT_PERSES_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecollect-perses"
    )
    exe, plugins = cache / "bin" / "percli", cache / "plugins"
    assert exe.is_file() and plugins.is_dir(), (
        f"percli not found in {cache}: run packaging/install-test-deps.sh "
        "(or packaging/perses/install-percli.sh)"
    )
    return exe, plugins


def lint(percli: tuple[Path, Path], path: Path) -> subprocess.CompletedProcess[str]:
    exe, plugins = percli
    return subprocess.run(
        [str(exe), "lint", "-f", str(path), "--plugin.path", str(plugins)],
        capture_output=True, text=True, timeout=120,
    )


def test_committed_json_is_what_the_code_builds() -> None:
    built = subprocess.run(
        [sys.executable, str(PERSES / "build_dashboard.py")], check=True, capture_output=True, text=True
    ).stdout
    assert built == DASHBOARD.read_text(), f"run: python packaging/perses/build_dashboard.py > {DASHBOARD}"


def test_percli_lint_passes(percli: tuple[Path, Path]) -> None:
    proc = lint(percli, DASHBOARD)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "look good" in proc.stdout
    assert "unable to load plugin" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("breakage", ["query_field", "unit", "panel_kind"])
def test_percli_lint_rejects_a_broken_dashboard(
    percli: tuple[Path, Path], tmp_path: Path, breakage: str
) -> None:
    """Proof that the schemas are loaded: without them percli accepts any panel spec."""
    doc: dict[str, Any] = copy.deepcopy(json.loads(DASHBOARD.read_text()))
    panel = doc["spec"]["panels"]["rss"]["spec"]
    if breakage == "query_field":
        panel["queries"][0]["spec"]["plugin"]["spec"]["promql"] = "up"
    elif breakage == "unit":
        panel["plugin"]["spec"]["yAxis"]["format"]["unit"] = "parsecs"
    else:
        panel["plugin"]["kind"] = "NoSuchChart"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert lint(percli, bad).returncode != 0


def test_every_panel_is_laid_out_once() -> None:
    doc = json.loads(DASHBOARD.read_text())
    refs = [
        item["content"]["$ref"].rsplit("/", 1)[1]
        for grid in doc["spec"]["layouts"]
        for item in grid["spec"]["items"]
    ]
    assert sorted(refs) == sorted(doc["spec"]["panels"])


# Prometheus name in the dashboard -> (module that defines the instrument, literal that names it).
EMITTED = {
    "edgecollect_spool_bytes": ("edgecollect/spool.py", '"bytes"'),
    "edgecollect_spool_files": ("edgecollect/spool.py", '"files"'),
    "edgecollect_spool_oldest_age_seconds": ("edgecollect/spool.py", '"oldest_age"'),
    "edgecollect_spool_points_dropped_total": ("edgecollect/spool.py", '"points_dropped"'),
    "edgecollect_buffer_dropped_total": ("edgecollect/runtime.py", '"buffer", "dropped"'),
    "_points_rejected_total": ("edgecollect/sources/base.py", '"points_rejected"'),
    "edgecollect_upstream_points_delivered_total": ("edgecollect/exporters/forwarder.py", '"points_delivered"'),
    "edgecollect_upstream_retries_total": ("edgecollect/exporters/forwarder.py", '"retries"'),
    "edgecollect_clock_repairs_total": ("edgecollect/runtime.py", '"clock", "repairs"'),
    "process_memory_usage_bytes": ("edgecollect/sources/host.py", '"process.memory.usage"'),
    "hw_temperature_celsius": ("edgecollect/sources", '"hw.temperature"'),
}


@pytest.mark.parametrize("prom_name", sorted(EMITTED))
def test_queried_metrics_are_emitted(prom_name: str) -> None:
    queries = re.findall(r'"query": "([^"\\]*(?:\\.[^"\\]*)*)"', DASHBOARD.read_text())
    assert any(prom_name in q for q in queries), f"no panel queries {prom_name}"
    where, literal = EMITTED[prom_name]
    path = ROOT / where
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
    assert any(literal in f.read_text() for f in files), f"{literal} not found in {where}: renamed?"
