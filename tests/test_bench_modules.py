"""The benchmarks run on demand, not in CI, so a rename elsewhere can break one unseen. Importing
each of them here (cheap: none does work at import) catches that in the ordinary test run."""

from __future__ import annotations

import ast
import importlib
import importlib.util
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


def _imports_inside(path: Path) -> list[tuple[str, str]]:
    """Every `from tests.X import name` in the file, those inside functions too (a benchmark imports
    its peers lazily, so importing the module alone does not reach them)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("tests", "edgecollect"):
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_lazy_imports_resolve(name: str) -> None:
    missing = []
    for module, attr in _imports_inside(BENCH / f"{name}.py"):
        try:
            imported = importlib.import_module(module)
        except ImportError as e:
            missing.append(f"{module}: {e}")
            continue
        is_submodule = hasattr(imported, "__path__") and importlib.util.find_spec(f"{module}.{attr}") is not None
        if not hasattr(imported, attr) and not is_submodule:
            missing.append(f"{module}.{attr}")
    assert missing == []
