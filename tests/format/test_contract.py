"""The batch contract has one owner: no module of the package spells a key, format name or flag itself.

Read with `ast` from every edgecollect/**.py, so a comment or docstring that names a key is fine
and only code counts:

- a string or bytes literal equal to a schema metadata key (either spelling), a format name or a
  flag attribute name, anywhere but edgecollect/format/__init__.py;
- an assignment to a name the contract declares (`Signal`, `SIGNALS`, `FLAG_*`, `COL_*`, `META_*`,
  the reader's schemas and IPC options) outside the module that declares it;
- a flag tested or set by its number (`flags & 0x03`, `pc.bit_wise_and(flags, 1)`).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import edgecollect.format as contract
import edgecollect.format.reader as reader

PACKAGE = Path(contract.__file__).resolve().parents[1]
CONTRACT = Path(contract.__file__).resolve()
READER = Path(reader.__file__).resolve()

# The reader's `TS` is not checked: the OTAP tables name the wire's own timestamp type that way.
READER_NAMES = {"METRICS_FIELDS", "LOGS_FIELDS", "IPC_OPTIONS", "IPC_READ_OPTIONS"}


def reserved_literals() -> set[str | bytes]:
    keys = {value for name, value in vars(contract).items() if name.startswith("META_")}
    assert keys and all(isinstance(k, bytes) for k in keys)
    decoded = {k.decode() for k in keys if isinstance(k, bytes)}
    return {*keys, *decoded, *contract.FORMAT_OF.values(), *(name for _, name in contract.FLAG_ATTRIBUTES)}


def owned_names() -> dict[str, Path]:
    names = {name: CONTRACT for name in contract.__all__ if name[0].isupper()}
    names.update({name: READER for name in READER_NAMES})
    return names


def _mentions_flags(node: ast.AST) -> bool:
    return "flag" in ast.unparse(node).lower()


def _is_number(node: ast.AST) -> bool:
    if isinstance(node, ast.Call) and node.args:  # pa.scalar(1, pa.uint8())
        node = node.args[0]
    return isinstance(node, ast.Constant) and type(node.value) is int


def violations(source: str, path: Path) -> Iterator[str]:
    """What `source` (the file at `path`) spells of the contract itself."""
    tree = ast.parse(source)
    literals = reserved_literals() if path != CONTRACT else set()
    owned = owned_names()
    bit_ops = (ast.BitAnd, ast.BitOr, ast.BitXor)
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes) and node.value in literals:
            yield f"{where}: spells {node.value!r}; import it from edgecollect.format"
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Name) and owned.get(target.id, path) != path:
                yield f"{where}: redeclares {target.id}, which {owned[target.id].name} owns"
        if isinstance(node, ast.BinOp) and isinstance(node.op, bit_ops):
            pairs = ((node.left, node.right), (node.right, node.left))
            if any(_is_number(a) and _mentions_flags(b) for a, b in pairs):
                yield f"{where}: a flag bit by its number in {ast.unparse(node)!r}; use format.FLAG_*"
        if (isinstance(node, ast.AugAssign) and isinstance(node.op, bit_ops)
                and _is_number(node.value) and _mentions_flags(node.target)):
            yield f"{where}: a flag bit by its number in {ast.unparse(node)!r}; use format.FLAG_*"
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("bit_wise_")
                and any(_is_number(a) for a in node.args) and any(_mentions_flags(a) for a in node.args)):
            yield f"{where}: a flag bit by its number in {ast.unparse(node)!r}; use format.FLAG_*"


def test_no_module_spells_a_key_format_or_flag_but_the_owner() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found.extend(violations(path.read_text(encoding="utf-8"), path.resolve()))
    assert found == []


def test_the_check_catches_each_kind_of_redeclaration() -> None:
    elsewhere = PACKAGE / "exporters" / "toy.py"
    toy = '''
"""A docstring may say edgecollect.resource and metrics/1."""
from typing import Literal
Signal = Literal["metrics", "logs"]
FLAG_TIME_REPAIRED: int = 2
METRICS_FIELDS = []
def f(batch, flags, pc):
    meta = batch.schema.metadata.get(b"edgecollect.boot_id")
    if fmt == "logs/1" or key == "edgecollect.time.repaired":
        pass
    flags |= 2
    return flags & 0x03, pc.bit_wise_and(row_flags, pa.scalar(1, pa.uint8())), (value >> 3) & 1
'''
    found = sorted(violations(toy, elsewhere), key=lambda v: int(v.split(":")[1]))
    assert [v.split(";")[0] for v in found] == [
        "toy.py:4: redeclares Signal, which __init__.py owns",
        "toy.py:5: redeclares FLAG_TIME_REPAIRED, which __init__.py owns",
        "toy.py:6: redeclares METRICS_FIELDS, which reader.py owns",
        "toy.py:8: spells b'edgecollect.boot_id'",
        "toy.py:9: spells 'logs/1'",
        "toy.py:9: spells 'edgecollect.time.repaired'",
        "toy.py:11: a flag bit by its number in 'flags |= 2'",
        "toy.py:12: a flag bit by its number in 'flags & 3'",
        "toy.py:12: a flag bit by its number in 'pc.bit_wise_and(row_flags, pa.scalar(1, pa.uint8()))'",
    ]  # not the docstring, not `(value >> 3) & 1`, which is no flag
    # The owner itself declares them.
    assert list(violations(CONTRACT.read_text(encoding="utf-8"), CONTRACT)) == []


def test_the_contract_loads_without_pyarrow() -> None:
    """clock.py stamps the flag bits before footprint.before_imports() may run: no pyarrow yet."""
    code = "import sys, edgecollect.clock, edgecollect.format; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_flag_bits_are_distinct_and_each_has_an_attribute() -> None:
    bits = [bit for bit, _ in contract.FLAG_ATTRIBUTES]
    assert sorted(bits) == [contract.FLAG_CLOCK_UNSYNCED, contract.FLAG_TIME_REPAIRED]
    assert all(bit & (bit - 1) == 0 for bit in bits)  # one bit each
    assert sum(bits) == contract.FLAG_BITS


def test_signals_keep_their_on_disk_order() -> None:
    # A spool file's header stores the signal as its index in SIGNALS: reordering breaks old files.
    assert contract.SIGNALS == ("metrics", "logs")
    assert [contract.signal_of(contract.FORMAT_OF[s]) for s in contract.SIGNALS] == list(contract.SIGNALS)
    assert contract.signal_of("metrics/2") is None
