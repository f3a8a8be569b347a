"""Process-wide memory settings of a running agent (issue 11; figures in docs/benchmarks/footprint.md).

Two things only a whole process can decide, each measured with `python -m tests.bench.bench_footprint`:

- `before_imports()` (first thing in `edgecollect run`, before pyarrow loads): pyarrow imports numpy
  whenever it is installed, though the agent never uses it — 11 MB RSS / 6 MB anonymous memory for
  nothing. Marking numpy absent makes pyarrow take its numpy-free path. Arrow's buffers come from
  the C library's allocator (`system` pool) rather than the bundled mimalloc, whose arenas keep
  freed pages: it holds less between flushes. `ARROW_DEFAULT_MEMORY_POOL` set by the user wins.
- `release_arrow_memory()` (after a batch is encoded): hands the pool's free pages back to the
  kernel, at most once per `RELEASE_EVERY_S` so a busy MQTT stream does not pay it per batch.
"""

from __future__ import annotations

import os
import sys
import threading
import time

POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"
RELEASE_EVERY_S = 5.0

_release_lock = threading.Lock()
_last_release = 0.0


def before_imports() -> None:
    """Call before anything imports pyarrow; does nothing once pyarrow or numpy is loaded."""
    if "pyarrow" in sys.modules or "numpy" in sys.modules:
        return
    sys.modules["numpy"] = None  # type: ignore[assignment]  # import numpy → ImportError: pyarrow skips it
    os.environ.setdefault(POOL_ENV, "system")


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
    return True

