"""How the C allocator treats large buffers: freed ones go back to the kernel at once.

glibc serves a request above its mmap threshold (128 KiB at start) with its own mmap, returned to
the kernel on free. But the threshold is dynamic: after the first such block is freed it rises to
that block's size (up to 32 MiB), so the next multi-megabyte buffers come from the heap and stay in
the process once freed. One rejected 10 MB MQTT packet (paho reads it through several buffers) or
one replaced pipeline's rings then hold tens of MB of RSS for good.

Fixing the threshold at LARGE_BLOCK turns the dynamic rule off: every block of 1 MiB or more is
its own mapping, unmapped on free (and a ring growing by realloc moves with mremap, without a
copy). Cost: one mmap/munmap pair per large allocation (the batcher's and spool's buffers of a
megabyte or more, a few per flush at most). Elsewhere than glibc (musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # <malloc.h>
LARGE_BLOCK = 1 << 20


def return_large_frees(threshold: int = LARGE_BLOCK) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes; True if the allocator took it."""
    try:
        # The process's own symbols: glibc's mallopt is there without a lookup. find_library("c")
        # would run /sbin/ldconfig, a program the service's sandbox does not let the agent start.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False  # not glibc: its own policy applies
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        log.debug("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold)
        return False
    return True
