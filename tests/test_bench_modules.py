"""The benchmarks run on demand, not in CI, so a rename elsewhere can break one unseen. Importing
each of them here (cheap: none does work at import) catches that in the ordinary test run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent / "bench"
MODULES = sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__")


def test_there_are_benchmarks_to_check() -> None:
    assert "bench_footprint" in MODULES and len(MODULES) > 5


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name: str) -> None:
    module = importlib.import_module(f"tests.bench.{name}")
    assert module.__name__ == f"tests.bench.{name}"
