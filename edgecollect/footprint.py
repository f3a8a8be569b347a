"""Process-wide memory settings of a running agent (issue 11; figures in docs/benchmarks/footprint.md).

Two things only a whole process can decide, each measured with `python -m tests.bench.bench_footprint`:

- `before_imports()` (first thing in `edgecollect run`, before pyarrow loads): pyarrow imports numpy
  and cloudpickle whenever they are installed, though the agent uses neither — 11 MB RSS / 6 MB
  anonymous memory for numpy, 2.7 / 2.5 MB for cloudpickle. Marking them absent makes pyarrow take
  its numpy-free path and the standard pickle. (The .deb's own venv has neither; a shared
  environment, like the test one, often has both.) glibc gets one malloc arena for all threads
  (`heap.limit_arenas`, before any thread starts): on profile C, 40.7 → 38.4 MB anonymous memory;
  `MALLOC_ARENA_MAX` or a `glibc.malloc.arena_max` tunable set by the user wins. Arrow's buffers
  come from the C library's allocator (`system` pool) rather than the bundled mimalloc, whose arenas keep
  freed pages: it holds less between flushes. `ARROW_DEFAULT_MEMORY_POOL` set by the user wins.
- `release_arrow_memory()` (after a batch is encoded): hands the pool's free pages back to the
  kernel, and the free pages of the C allocator's arenas (`heap.trim_free_memory`: with the
  `system` pool that is where Arrow's buffers were, beside every thread's own frees), at most once
  per `RELEASE_EVERY_S` so a busy MQTT stream does not pay it per batch.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from edgecollect.heap import ARENAS, limit_arenas, trim_free_memory

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
ARENA_ENV = "MALLOC_ARENA_MAX"  # read by glibc itself at start, as is GLIBC_TUNABLES
RELEASE_EVERY_S = 5.0
UNUSED_BY_PYARROW_USERS = ("numpy", "cloudpickle")  # optional imports of pyarrow the agent never needs

_release_lock = threading.Lock()
_last_release = 0.0


def before_imports() -> None:
    """Call before anything imports pyarrow; does nothing once pyarrow or numpy is loaded."""
    if "pyarrow" in sys.modules:
        return
    for unused in UNUSED_BY_PYARROW_USERS:
        if unused not in sys.modules:
            sys.modules[unused] = None  # type: ignore[assignment]  # import → ImportError: pyarrow goes without
    os.environ.setdefault(POOL_ENV, "system")
    if ARENA_ENV not in os.environ and "arena_max" not in os.environ.get("GLIBC_TUNABLES", ""):
        limit_arenas(ARENAS)


def release_arrow_memory(now: float | None = None) -> bool:
    """Return the Arrow pool's unused memory to the OS; True if it ran (rate-limited)."""
    global _last_release
    t = time.monotonic() if now is None else now
    with _release_lock:
        if t - _last_release < RELEASE_EVERY_S:
            return False
        _last_release = t
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim_free_memory()
    return True

