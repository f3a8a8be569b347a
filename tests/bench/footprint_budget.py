"""Where the agent's memory and wake-ups go (issue 11): the budget table of docs/benchmarks/footprint.md.

    python -m tests.bench.footprint_budget [--profiles A,B,C] [--seconds 60]

Runs `edgecollect run` (built-in defaults; B adds the Go sink of tests/interop as upstream; C adds
MQTT QoS 1 at 2,000 msg/s through a real mosquitto, the config of bench_footprint) with a watcher
thread inside the process that, after a warm-up, reads:

- /proc/self/smaps grouped by mapping (libarrow, the interpreter, grpc, protobuf, [heap], anonymous
  mappings, ...): resident and anonymous kB of each;
- the Arrow memory pool (backend, bytes allocated), the rings (bytes of storage grown so far, and the
  most points seen in a ring, sampled every 0.2 s), the write-behind hold (bytes held, the most
  seen) and the series table (series held);
- glibc's allocator (mallinfo2, all arenas): bytes in use, bytes free but kept, bytes in mmapped
  blocks; then what `malloc_trim(0)` gives back (anonymous kB before → after), i.e. how much of the
  anonymous memory is freed-but-kept fragmentation;
- context switches of every thread over `--seconds`, by thread name (Python threads by their
  `threading` name, native ones by /proc comm);
- in a second run, started under tracemalloc, Python-level allocations by top-level package (the
  tracer's own memory is why that run's figures are not the resident ones above).

Figures only; nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.bench.bench_footprint import MQTT_RATE, Work, edgecollect_config
from tests.bench.bench_suite import machine, stop_process

REPO = Path(__file__).resolve().parents[2]

CHILD = r'''
import json, os, signal, sys, threading, time
trace = sys.argv[3] == "trace"
if trace:
    import tracemalloc
    tracemalloc.start(1)
out, seconds, warmup = sys.argv[2], float(sys.argv[4]), float(sys.argv[5])

def switches():
    res = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            text = open(f"/proc/self/task/{tid}/status").read()
            comm = open(f"/proc/self/task/{tid}/comm").read().strip()
        except OSError:
            continue
        n = sum(int(l.split()[1]) for l in text.splitlines() if l.startswith(("voluntary_ctxt", "nonvoluntary_ctxt")))
        res[int(tid)] = (comm, n)
    return res

def group(path):
    name = os.path.basename(path) if path.startswith("/") else path
    for key, label in (("libarrow", "libarrow (C++)"), ("lib.cpython", "pyarrow (Cython)"), ("cygrpc", "grpc"),
                       ("_message", "protobuf"), ("_upb", "protobuf"), ("libpython", "interpreter"),
                       ("python3", "interpreter"), ("psutil", "psutil"), ("zstd", "zstd"), ("libstdc++", "libstdc++"),
                       ("libc.so", "libc"), ("libssl", "openssl"), ("libcrypto", "openssl"), ("numpy", "numpy"),
                       ("libparquet", "libparquet")):
        if key in name:
            return label
    if not name:
        return "anonymous mappings (malloc arenas, Arrow pool, stacks)"
    if name.startswith("["):
        return name
    return "other files" if path.startswith("/") else name

def smaps():
    groups, cur = {}, None
    for line in open("/proc/self/smaps"):
        parts = line.split()
        if "-" in parts[0] and ":" not in parts[0]:
            cur = groups.setdefault(group(parts[5] if len(parts) > 5 else ""), {"rss_kb": 0, "anon_kb": 0})
        elif parts[0] == "Rss:":
            cur["rss_kb"] += int(parts[1])
        elif parts[0] == "Anonymous:":
            cur["anon_kb"] += int(parts[1])
    return groups

import ctypes
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def anon_kb():
    for line in open("/proc/self/smaps_rollup"):
        if line.startswith("Anonymous:"):
            return int(line.split()[1])

def pymalloc():
    """sys._debugmallocstats' summary lines (it writes to fd 2): Python objects' own arenas."""
    import tempfile
    with tempfile.TemporaryFile("w+") as f:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    keep = ("# arenas allocated current", "# bytes in allocated blocks", "# bytes in available blocks",
            "bytes lost to pool headers", "bytes lost to quantization", "Total")
    return {l.split("=")[0].strip(" #"): int(l.split("=")[1].replace(",", "")) for l in text.splitlines()
            if "=" in l and l.startswith(keep)}

def glibc_arenas():
    """How many malloc arenas glibc made (one per thread that allocated, up to 8 x cores)."""
    import tempfile
    libc.fopen.restype = ctypes.c_void_p
    libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    libc.fclose.argtypes = [ctypes.c_void_p]
    libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    with tempfile.NamedTemporaryFile() as f:
        fp = libc.fopen(f.name.encode(), b"w")
        libc.malloc_info(0, fp)
        libc.fclose(fp)
        return open(f.name).read().count("<heap nr=")

def arenas():
    m = libc.mallinfo2()
    return {"in_use": m.uordblks, "free_kept": m.fordblks, "mmapped": m.hblkhd, "top_pad": m.keepcost,
            "arena_bytes": m.arena}

peaks = {"ring_points": {}, "held_bytes": 0, "held_batches": 0}
def sample_peaks(stop_at):
    import gc
    watched = [o for o in gc.get_objects() if type(o).__name__ in ("Ring", "WriteBehind")]
    while time.monotonic() < stop_at:
        for o in watched:
            if type(o).__name__ == "Ring":
                peaks["ring_points"][o.name] = max(peaks["ring_points"].get(o.name, 0), len(o))
            else:
                peaks["held_bytes"] = max(peaks["held_bytes"], o._bytes)
                peaks["held_batches"] = max(peaks["held_batches"], len(o._held))
        time.sleep(0.2)

def watch():
    time.sleep(warmup)
    import gc, threading as th
    gc.unfreeze()
    th.Thread(target=sample_peaks, args=(time.monotonic() + min(seconds, 20),), daemon=True).start()
    names = {t.native_id: t.name for t in th.enumerate()}
    before = switches()
    time.sleep(seconds)
    after = switches()
    names.update({t.native_id: t.name for t in th.enumerate()})
    threads = {}
    for tid, (comm, n) in after.items():
        label = names.get(tid) or comm
        threads[label] = threads.get(label, 0) + n - before.get(tid, (comm, 0))[1]
    import pyarrow as pa
    gc.unfreeze()  # the agent froze its start-up objects; get_objects() sees only unfrozen ones
    rings = [o for o in gc.get_objects() if type(o).__name__ == "Ring"]
    holds = [o for o in gc.get_objects() if type(o).__name__ == "WriteBehind"]
    registries = [o for o in gc.get_objects() if type(o).__name__ == "SeriesRegistry"]
    doc = {"smaps": smaps(), "threads": threads, "minutes": seconds / 60,
           "arrow_pool": pa.default_memory_pool().backend_name, "arrow_allocated": pa.total_allocated_bytes(),
           "rings": {r.name: r.memory_bytes() for r in rings}, "series": sum(len(r) for r in registries),
           "held_bytes": sum(h._bytes for h in holds), "peaks": peaks, "malloc": arenas(),
           "glibc_arenas": glibc_arenas(), "pymalloc": pymalloc()}
    before_trim = anon_kb()
    libc.malloc_trim(0)
    doc["trim_anon_kb"] = [before_trim, anon_kb()]
    if trace:
        by = {}
        for stat in tracemalloc.take_snapshot().statistics("filename"):
            f = stat.traceback[0].filename
            key = "other"
            for marker in ("site-packages/", "/edgecollect/", "/lib/python3"):
                if marker in f:
                    rest = f.split(marker, 1)[1]
                    key = "edgecollect" if marker == "/edgecollect/" else rest.split("/")[0].removesuffix(".py")
                    key = "stdlib" if marker == "/lib/python3" and "site-packages" not in f else key
                    break
            if f.startswith("<frozen"):
                key = "stdlib"
            by[key] = by.get(key, 0) + stat.size
        doc["python_by_package"] = dict(sorted(by.items(), key=lambda kv: -kv[1]))
        ours = [s for s in tracemalloc.take_snapshot().statistics("lineno")
                if "/edgecollect/" in s.traceback[0].filename]
        doc["edgecollect_lines"] = [(f"{s.traceback[0].filename.split('/edgecollect/')[-1]}:{s.traceback[0].lineno}",
                                     s.size) for s in ours[:10]]
    open(out, "w").write(json.dumps(doc))
    os.kill(os.getpid(), signal.SIGTERM)

# What `edgecollect run` does first (the arena limit, the Arrow pool), before this process's first
# extra thread: a thread's arena made before the limit would stay (footprint.before_imports).
from edgecollect import footprint
footprint.before_imports()
threading.Thread(target=watch, name="budget-watcher", daemon=True).start()
from edgecollect.cli import main
sys.exit(main(["run", "-c", sys.argv[1]]))
'''


def run_child(profile: str, tmp: Path, trace: bool, seconds: float, warmup: float,
              env: dict[str, str] | None = None) -> dict[str, Any]:
    d = tmp / f"{profile}-{'trace' if trace else 'plain'}"
    d.mkdir()
    work = Work(profile, d)
    infra: list[Any] = []
    if profile in ("B", "C"):
        from tests.support.sink import Sink

        sink = Sink(d / "sink.jsonl").start()
        infra.append(sink)
        work.otlp_grpc = sink.grpc_address.removeprefix("http://")
    if profile == "C":
        from tests.support.broker import Broker

        broker = Broker(d)
        broker.start()
        infra.append(broker)
        work.mqtt_host, work.mqtt_port = broker.host, broker.port
        pub = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_suite", "publish", broker.host,
                                str(broker.port), "bench", str(MQTT_RATE), str(seconds + warmup + 60)], cwd=REPO)
        infra.insert(0, pub)
    (d / "agent.toml").write_text(edgecollect_config(work, d / "state"))
    out = d / "budget.json"
    try:
        subprocess.run([sys.executable, "-c", CHILD, str(d / "agent.toml"), str(out), "trace" if trace else "plain",
                        str(seconds), str(warmup)], cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, check=True,
                       timeout=seconds + warmup + 120)
    finally:
        for thing in infra:
            if isinstance(thing, subprocess.Popen):
                stop_process(thing)
            else:
                thing.stop()
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def show(profile: str, plain: dict[str, Any], traced: dict[str, Any]) -> None:
    print(f"\nprofile {profile}: resident memory by mapping (kB)")
    total_rss = sum(g["rss_kb"] for g in plain["smaps"].values())
    total_anon = sum(g["anon_kb"] for g in plain["smaps"].values())
    for name, g in sorted(plain["smaps"].items(), key=lambda kv: -kv[1]["rss_kb"]):
        if g["rss_kb"] >= 100:
            print(f"  {name:<58} RSS {g['rss_kb']:>7}  anon {g['anon_kb']:>7}")
    print(f"  {'total':<58} RSS {total_rss:>7}  anon {total_anon:>7}")
    print(f"  Arrow pool {plain['arrow_pool']}: {plain['arrow_allocated']} B allocated between flushes; "
          f"rings: {plain['rings']} B; series held: {plain['series']}")
    peaks = plain["peaks"]
    print(f"  write-behind held now {plain['held_bytes']} B; most seen {peaks['held_bytes']} B in "
          f"{peaks['held_batches']} batches; most points in a ring: {peaks['ring_points']}")
    m = plain["malloc"]
    print(f"  glibc malloc: in use {m['in_use'] // 1024} kB, free but kept {m['free_kept'] // 1024} kB "
          f"(top pad {m['top_pad'] // 1024} kB), mmapped blocks {m['mmapped'] // 1024} kB; "
          f"malloc_trim(0): anon {plain['trim_anon_kb'][0]} -> {plain['trim_anon_kb'][1]} kB; "
          f"{plain['glibc_arenas']} arenas")
    print(f"  Python's own allocator (pymalloc): {plain['pymalloc']}")
    print(f"profile {profile}: Python allocations by package (tracemalloc run, kB)")
    for name, size in list(traced.get("python_by_package", {}).items())[:12]:
        print(f"  {name:<30} {size // 1024:>7}")
    for where, size in traced.get("edgecollect_lines", []):
        print(f"    edgecollect/{where:<40} {size // 1024:>7}")
    print(f"profile {profile}: wake-ups per minute by thread")
    per_min = {k: round(v / plain["minutes"]) for k, v in plain["threads"].items()}
    for name, n in sorted(per_min.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<40} {n:>6}")
    print(f"  {'total':<40} {sum(per_min.values()):>6}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", default="A,B")
    ap.add_argument("--seconds", type=float, default=60.0, help="window for the wake-up count (default 60)")
    ap.add_argument("--warmup", type=float, default=25.0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="set in the agent's environment")
    ap.add_argument("--no-trace", action="store_true", help="skip the tracemalloc run")
    args = ap.parse_args()
    info = machine()
    print(f"footprint_budget on {info['cpu_model']} ({info['cpus']} cores), Python {info['python']}, "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {args.seconds:.0f} s window after {args.warmup:.0f} s; "
          f"env: {' '.join(args.env) or '(none)'}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgecollect-budget-") as tmp:
        for profile in args.profiles.split(","):
            env = dict(kv.split("=", 1) for kv in args.env)
            plain = run_child(profile, Path(tmp), False, args.seconds, args.warmup, env)
            traced = {} if args.no_trace else run_child(profile, Path(tmp), True, 5.0, args.warmup, env)
            show(profile, plain, traced)
            results[profile] = {"plain": plain, "traced": traced}
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
