"""Process-wide memory settings of a running agent (issue 11; figures in docs/benchmarks/footprint.md).

Two things only a whole process can decide, each measured with `python -m tests.bench.bench_footprint`:

- `before_imports()` (first thing in `edgecollect run`, before pyarrow loads): pyarrow imports numpy
  and cloudpickle whenever they are installed, though the agent uses neither — 11 MB RSS / 6 MB
  anonymous memory for numpy, 2.7 / 2.5 MB for cloudpickle. Marking them absent makes pyarrow take
  its numpy-free path and the standard pickle. (The .deb's own venv has neither; a shared
  environment, like the test one, often has both.) Arrow's buffers come from
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

