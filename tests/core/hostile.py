"""Hostile spool entries, made for real: sparse giants, FIFOs, links to devices and to foreign folders.

Shared by the spool's unit tests (tests/core/test_spool_hostile.py) and the chaos scenario
(tests/chaos/test_hostile_spool.py). Everything outside the state_dir that a test plants is
fingerprinted, so "nothing outside was touched" is a comparison, not a hope.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgecollect.spool import HEADER, MAGIC, OVERHEAD, VERSION, frame

GIANT = 6 * 1024**3  # the 6 GB sparse file: no disk blocks, all zeros


def plant_hostile(spool: Path, foreign: Path) -> dict[str, str]:
    """Put one of every hostile kind into `spool` (made if needed); returns {name: kind}."""
    spool.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, str] = {}

    def name(n: int, kind: str) -> Path:
        entry = f"{0xF0000 + n:016x}.ecb"
        kinds[entry] = kind
        return spool / entry

    with open(name(0, "sparse_zeros"), "wb") as fh:
        fh.truncate(GIANT)
    # A valid-looking header that claims a 4 GiB payload, with a file of exactly that size: only
    # the size bound can refuse it without reading it.
    claimed = 0xFFFF_FFF0
    header = HEADER.pack(MAGIC, VERSION, 0, 0, 0xF0001, 0, 1, claimed)
    with open(name(1, "sparse_claimed"), "wb") as fh:
        fh.write(header)
        fh.truncate(OVERHEAD + claimed)
    os.mkfifo(name(2, "fifo"))
    os.symlink("/dev/zero", name(3, "link_dev_zero"))
    name(4, "dir").mkdir()
    os.symlink(foreign / "precious.bin", name(5, "link_foreign_file"))
    os.symlink(foreign, name(6, "link_foreign_dir"))
    # A temp file that is a FIFO: recovery must not open it either.
    os.mkfifo(spool / f".{0xF0007:016x}.tmp")
    kinds[f".{0xF0007:016x}.tmp"] = "fifo_temp"
    # A link that looks like a complete batch (its target is one): still never followed.
    (foreign / "batch.bin").write_bytes(frame(0xF0008, "metrics", 1, 1, b"x" * 64))
    os.symlink(foreign / "batch.bin", name(8, "link_valid_batch"))
    return kinds


def make_foreign(folder: Path) -> Path:
    """A folder outside the state_dir with files the agent must never touch."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "precious.bin").write_bytes(os.urandom(4096))
    for i in range(3):
        (folder / f"{1700000000000000000 + i}-bad_magic-{i:016x}.ecb").write_bytes(os.urandom(2048))
    (folder / "notes.txt").write_text("not the agent's\n")
    return folder


def fingerprint(folder: Path) -> dict[str, tuple[int, str]]:
    """{relative path: (mode, sha256 or link target)} of everything under `folder`, links unfollowed."""
    out: dict[str, tuple[int, str]] = {}
    for root, dirs, files in os.walk(folder, followlinks=False):
        for entry in dirs + files:
            path = Path(root) / entry
            st = path.lstat()
            if path.is_symlink():
                digest = "->" + os.readlink(path)
            elif path.is_file() and st.st_size > 16 * 1024**2:  # the planted giants: hashing 6 GB is slow
                digest = f"size={st.st_size} mtime={st.st_mtime_ns}"
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest = ""
            out[str(path.relative_to(folder))] = (st.st_mode, digest)
    return out


def damaged_files(spool: Path, count: int, truncated_every: int = 10) -> dict[str, int]:
    """`count` small damaged batch files (every `truncated_every`-th truncated, the rest bad magic)."""
    spool.mkdir(parents=True, exist_ok=True)
    reasons = {"bad_magic": 0, "truncated": 0}
    good = frame(1, "metrics", 1, 1, b"y" * 100)
    for i in range(count):
        seq = 0x100000 + i
        data = frame(seq, "metrics", 1, 1, b"y" * 100)
        if i % truncated_every == 0:
            data, reason = data[:50], "truncated"
        else:
            data, reason = b"JUNK" + good[4:], "bad_magic"
        (spool / f"{seq:016x}.ecb").write_bytes(data)
        reasons[reason] += 1
    return reasons
