"""How the C allocator holds memory: large freed buffers go back to the kernel at once, and the
free pages inside its arenas are handed back after a flush.

glibc serves a request above its mmap threshold (128 KiB at start) with its own mmap, returned to
the kernel on free. But the threshold is dynamic: after the first such block is freed it rises to
that block's size (up to 32 MiB), so the next multi-megabyte buffers come from the heap and stay in
the process once freed. One rejected 10 MB MQTT packet (paho reads it through several buffers) or
one replaced pipeline's rings then hold tens of MB of RSS for good.

Fixing the threshold at LARGE_BLOCK turns the dynamic rule off: every block of 1 MiB or more is
its own mapping, unmapped on free (and a ring growing by realloc moves with mremap, without a
copy). Cost: one mmap/munmap pair per large allocation (the batcher's and spool's buffers of a
megabyte or more, a few per flush at most). Elsewhere than glibc (musl) this is a no-op.

Smaller frees stay in glibc's arenas (one per thread that allocated, up to 8 per core): under a
steady MQTT stream every thread of the data path (source, batcher, forwarder, gRPC) frees messages,
rows and encoded batches in its own arena, and each arena keeps its free space, scattered between
live blocks, for its own threads (16 arenas, 6.0–6.7 MB free but kept on profile C).
`limit_arenas(ARENAS)`, set by `footprint.before_imports()` before any thread exists, makes them
share one, whose free space any thread reuses: 2.0 MB kept, 40.7 → 38.4 MB anonymous. Python
threads allocate under the GIL anyway, and glibc's per-thread cache serves small blocks without
the arena lock, so the threads that share it rarely wait for it.

`trim_free_memory()` (`malloc_trim(0)`) returns every whole free page of every arena to the kernel,
e.g. what a burst (a broker's backlog after a reconnect) left behind. It walks every arena under
its lock, so it runs at most once per `footprint.RELEASE_EVERY_S`, after a flush. Under a steady
stream the pages it returns (1.3–1.6 MB on C) are soon taken again. Figures:
docs/benchmarks/footprint.md, "C memory".
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_libc: ctypes.CDLL | None = None


def _glibc() -> ctypes.CDLL | None:
    """The process's own C library, if it is glibc (it has malloc_trim); None elsewhere."""
    global _libc
    if _libc is None:
        try:
            # The process's own symbols: glibc's are there without a lookup. find_library("c") would
            # run /sbin/ldconfig, a program the service's sandbox does not let the agent start.
            libc = ctypes.CDLL(None)
            libc.malloc_trim.argtypes = [ctypes.c_size_t]
            libc.malloc_trim.restype = ctypes.c_int
            libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            libc.mallopt.restype = ctypes.c_int
        except (OSError, AttributeError):
            return None
        _libc = libc
    return _libc


def limit_arenas(arenas: int) -> bool:
    """Let glibc make at most `arenas` malloc arenas; True if it took the limit.

    Takes effect for arenas not made yet: call it before the process starts its threads.
    """
    libc = _glibc()
    return libc is not None and libc.mallopt(M_ARENA_MAX, arenas) == 1


def trim_free_memory() -> bool:
    """Give every whole free page of glibc's arenas back to the kernel; True if any was."""
    libc = _glibc()
    return libc is not None and libc.malloc_trim(0) == 1

M_MMAP_THRESHOLD = -3  # <malloc.h>
M_ARENA_MAX = -8
LARGE_BLOCK = 1 << 20
ARENAS = 1  # malloc arenas the agent lets glibc make (glibc's default: 8 per core)


def return_large_frees(threshold: int = LARGE_BLOCK) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; True if the allocator took it."""
    libc = _glibc()
    if libc is None:
        return False  # not glibc: its own policy applies
    if libc.mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
        return False
    return True
