"""The package's import graph keeps the layering of docs/architecture.md: no circle, no upward import.

The graph is read with `ast` from every edgecollect/**.py, counting module-level imports, imports
inside functions (the lazy ones that keep an unconfigured feature free) and
`importlib.import_module("edgecollect....")` with a literal name. Every layer may import its own
layer and the layers below it, never one above: the foundation imports nothing of ours above it,
a stage of the data path imports the foundation and earlier stages (for their types), and only the
wiring layer (config, runtime, supervisor, cli) imports everything.

An existing violation is listed below by name, never ignored silently; whoever removes it removes
its entry (the test fails on a listed exception that no longer exists, so the lists only shrink).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgecollect"

# One module per upstream.protocol; none of them may import another.
EXPORTER_PROTOCOLS = ("edgecollect.exporters.otap", "edgecollect.exporters.otlp_grpc",
                      "edgecollect.exporters.otlp_http")

# Lowest first, in data-path order between the foundation and the wiring. A module belongs to the
# entry that names it, else to the entry naming the closest package above it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", ("edgecollect", "edgecollect.errors", "edgecollect.model", "edgecollect.clock",
                    "edgecollect.tomlpos", "edgecollect.configtypes", "edgecollect.telemetry",
                    "edgecollect.resource", "edgecollect.statusmodel", "edgecollect.statustext", "edgecollect.status",
                    "edgecollect.sdnotify", "edgecollect.footprint",
                    "edgecollect.heap", "edgecollect.timesync", "edgecollect.format")),
    ("sources", ("edgecollect.sources",)),
    ("buffer", ("edgecollect.buffer", "edgecollect.processors")),
    ("batch", ("edgecollect.batch", "edgecollect.coalesce", "edgecollect.batcher")),
    ("spool", ("edgecollect.spoolfile", "edgecollect.spoolquarantine", "edgecollect.spool",
               "edgecollect.downsample", "edgecollect.compaction", "edgecollect.writebehind")),
    # The exporters, lowest first: what an exporter and the forwarder agree on; the shared plumbing
    # (gRPC, OTLP mapping, OTAP encoding); the protocols, which import those and never each other
    # (test below); the registry that picks one by upstream.protocol; the forwarder that drives it.
    ("exporter contracts", ("edgecollect.exporters", "edgecollect.exporters.contracts",
                            "edgecollect.exporters.upstream", "edgecollect.exporters.tls",
                            "edgecollect.exporters.pacing", "edgecollect.exporters.gather",
                            "edgecollect.exporters.proto")),
    ("exporter plumbing", ("edgecollect.exporters.grpcplumbing", "edgecollect.exporters.otlp_map",
                           "edgecollect.exporters.otap_ipc", "edgecollect.exporters.otap_attrs",
                           "edgecollect.exporters.otap_tables", "edgecollect.exporters.otap_encode")),
    ("exporter protocols", EXPORTER_PROTOCOLS),
    ("forwarder", ("edgecollect.exporters.registry", "edgecollect.exporters.forwarder")),
    ("wiring", ("edgecollect.config", "edgecollect.configdoc", "edgecollect.runtime",
                "edgecollect.supervisor", "edgecollect.spooltool", "edgecollect.cli", "edgecollect.__main__",
                "edgecollect.opamp", "edgecollect.statelock", "edgecollect.signals",
                "edgecollect.clockchange")),
)

# Import circles that exist today, each as the set of modules in it (none: keep it so).
KNOWN_IMPORT_CIRCLES: tuple[frozenset[str], ...] = ()

# Upward imports that exist today: (importer, imported).
KNOWN_UPWARD_IMPORTS: frozenset[tuple[str, str]] = frozenset({
})


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[str]:
    """Every edgecollect module name `tree` imports, anywhere in it (modules or their attributes)."""
    here = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")[: len(here.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            yield source
            yield from (f"{source}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.args[0].value


def import_graph() -> dict[str, set[str]]:
    """module -> the edgecollect modules it imports (a `from pkg import name` counts as pkg.name
    when that is a module, else as pkg)."""
    files = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[module] = {name for name in _imported(tree, module, path.name == "__init__.py")
                         if name in files and name != module}
    return graph


def layer_of(module: str) -> int:
    """The rank of the entry naming `module` itself or, failing that, the closest package above it."""
    best: tuple[int, int] | None = None  # (length of the matching name, rank)
    for rank, (_, members) in enumerate(LAYERS):
        for m in members:
            names_it = module == m or (m != "edgecollect" and module.startswith(m + "."))
            if names_it and (best is None or len(m) > best[0]):
                best = (len(m), rank)
    if best is None:
        raise AssertionError(f"{module} is in no layer of LAYERS (and of docs/architecture.md): place it")
    return best[1]


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(m, d) for m, deps in graph.items() for d in deps if layer_of(d) > layer_of(m)}


def test_the_graph_sees_module_level_function_level_and_importlib_imports() -> None:
    graph = import_graph()
    assert "edgecollect.model" in graph["edgecollect.buffer"] or "edgecollect.telemetry" in graph["edgecollect.buffer"]
    assert "edgecollect.exporters.otap" in graph["edgecollect.exporters.registry"]  # inside a function
    assert "edgecollect.exporters.upstream" in graph["edgecollect.config"]  # importlib.import_module
    assert "edgecollect.sources.mqtt.config" in graph["edgecollect.sources.mqtt"]  # relative or absolute


def test_every_module_has_a_layer() -> None:
    for module in import_graph():
        layer_of(module)


def test_no_import_circle_but_the_listed_ones() -> None:
    found = set(circles(import_graph()))
    assert found - set(KNOWN_IMPORT_CIRCLES) == set(), "a new import circle"
    assert set(KNOWN_IMPORT_CIRCLES) - found == set(), "a listed circle is gone: remove it from KNOWN_IMPORT_CIRCLES"


def test_no_upward_import_but_the_listed_ones() -> None:
    found = upward_imports(import_graph())
    names = {rank: name for rank, (name, _) in enumerate(LAYERS)}
    new = sorted(f"{m} ({names[layer_of(m)]}) imports {d} ({names[layer_of(d)]})"
                 for m, d in found - KNOWN_UPWARD_IMPORTS)
    assert new == [], "upward imports"
    assert KNOWN_UPWARD_IMPORTS - found == set(), "a listed upward import is gone: remove it"


def test_the_checks_catch_a_circle_and_an_upward_import() -> None:
    toy = {"edgecollect.spool": {"edgecollect.exporters.forwarder"},
           "edgecollect.exporters.forwarder": {"edgecollect.spool"},
           "edgecollect.model": set()}
    assert circles(toy) == [frozenset({"edgecollect.spool", "edgecollect.exporters.forwarder"})]
    assert upward_imports(toy) == {("edgecollect.spool", "edgecollect.exporters.forwarder")}


def test_no_exporter_protocol_imports_another() -> None:
    graph = import_graph()
    crossing = sorted((m, d) for m in EXPORTER_PROTOCOLS for d in graph[m] if d in EXPORTER_PROTOCOLS)
    assert crossing == [], "a protocol module imports another: share through contracts or grpcplumbing"
    assert set(EXPORTER_PROTOCOLS) <= set(graph), "EXPORTER_PROTOCOLS names a module that does not exist"


def test_an_exporter_module_placed_above_a_lower_one_is_an_upward_import() -> None:
    toy = {"edgecollect.exporters.contracts": {"edgecollect.exporters.forwarder"},
           "edgecollect.exporters.forwarder": set()}
    assert upward_imports(toy) == {("edgecollect.exporters.contracts", "edgecollect.exporters.forwarder")}
