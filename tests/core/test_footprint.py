"""Process-wide memory settings (edgecollect/footprint.py), each checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgecollect import footprint

REPO = Path(__file__).resolve().parents[2]


def python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != footprint.POOL_ENV}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**base, "PYTHONPATH": str(REPO), **env})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


BEFORE_THEN_PYARROW = (
    "import sys; from edgecollect import footprint; footprint.before_imports(); import pyarrow as pa; "
    "print(pa.default_memory_pool().backend_name, "
    "all(sys.modules.get(m) is None for m in ('numpy', 'cloudpickle')), "
    "pa.array([1, 2]).to_pylist())"
)


def test_before_imports_keeps_numpy_and_cloudpickle_out_and_picks_the_system_pool() -> None:
    assert python(BEFORE_THEN_PYARROW) == "system True [1, 2]"


def test_a_pool_chosen_by_the_user_wins() -> None:
    assert python(BEFORE_THEN_PYARROW, ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc True [1, 2]"


def test_before_imports_does_nothing_once_pyarrow_is_loaded() -> None:
    code = ("import sys, pyarrow; from edgecollect import footprint; footprint.before_imports(); "
            "print('numpy' in sys.modules and sys.modules['numpy'] is None)")
    assert python(code) == "False"  # not marked absent: whatever pyarrow took stays


def test_arrow_memory_is_released_at_most_once_per_period() -> None:
    t = 1e9  # far from any earlier call in this process
    assert footprint.release_arrow_memory(now=t)
    assert not footprint.release_arrow_memory(now=t + footprint.RELEASE_EVERY_S / 2)
    assert footprint.release_arrow_memory(now=t + footprint.RELEASE_EVERY_S)



def test_writing_and_reading_a_spooled_batch_starts_no_thread() -> None:
    code = (
        "import os; from array import array; from edgecollect import batch\n"
        "from edgecollect.model import Resource, Series, SeriesRegistry\n"
        "reg = SeriesRegistry(max_series=10); sid = reg.intern(Series('x'))\n"
        "before = len(os.listdir('/proc/self/task'))\n"
        "rows = batch.Rows(array('I', [sid] * 500), array('q', range(500)), array('d', [1.5] * 500),\n"
        "                  array('q', [0] * 500), array('B', [0] * 500))\n"
        "data = batch.to_ipc(batch.build_metrics(rows, reg, Resource(), 'boot'))\n"
        "assert batch.from_ipc(data).num_rows == 500\n"
        "print(len(os.listdir('/proc/self/task')) - before)"
    )
    assert python(code) == "0"  # Arrow's CPU pool would add a thread per core, woken by every flush


FREED_THEN_RELEASED = (
    "import threading, pyarrow  # loaded first: its import is not what is measured\n"
    "from edgecollect import footprint\n"
    "def anon_kb():\n"
    "    return next(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('Anonymous:'))\n"
    "out = []\n"
    "def work():\n"
    # 1 kB blocks come from the C allocator (above pymalloc's 512 B), in this thread's own arena;
    # the last one stays live, so the freed ones sit below it and no automatic top-trim returns them.
    "    blocks = [bytes(1000) for _ in range(20000)]\n"
    "    keep = bytes(1000)\n"
    "    del blocks\n"
    "    held = anon_kb()\n"
    "    ran = footprint.release_arrow_memory(now=1e9)\n"
    "    out.append((ran, held - anon_kb(), len(keep)))\n"
    "t = threading.Thread(target=work); t.start(); t.join()\n"
    "print(*out[0])\n"
)


def test_a_release_after_a_flush_gives_the_c_allocators_free_pages_back() -> None:
    ran, returned_kb, _ = python(FREED_THEN_RELEASED).split()
    assert ran == "True"
    assert int(returned_kb) >= 10_000  # of the ~20 MB freed; kept by glibc without the trim



ARENAS_AFTER_THREADS = (
    "import ctypes, tempfile, threading\n"
    "from edgecollect import footprint\n"
    "footprint.before_imports()\n"
    "every = threading.Barrier(4)\n"
    "def work():\n"
    "    blocks = [bytes(1000) for _ in range(1000)]  # from the C allocator, in this thread's arena\n"
    "    every.wait()  # all four alive at once: none hands its arena on to the next\n"
    "    del blocks\n"
    "threads = [threading.Thread(target=work) for _ in range(4)]\n"
    "for t in threads: t.start()\n"
    "for t in threads: t.join()\n"
    "libc = ctypes.CDLL(None)\n"
    "libc.fopen.restype = ctypes.c_void_p\n"
    "libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]\n"
    "libc.fclose.argtypes = [ctypes.c_void_p]\n"
    "libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]\n"
    "with tempfile.NamedTemporaryFile() as f:\n"
    "    fp = libc.fopen(f.name.encode(), b'w'); libc.malloc_info(0, fp); libc.fclose(fp)\n"
    "    print(open(f.name).read().count('<heap nr='))\n"
)


def test_all_threads_share_one_malloc_arena() -> None:
    assert python(ARENAS_AFTER_THREADS) == "1"  # glibc alone: the main arena and one per thread, 5


def test_an_arena_limit_set_by_the_user_wins() -> None:
    assert python(ARENAS_AFTER_THREADS, MALLOC_ARENA_MAX="3") == "3"
