"""Where the agent's memory and wake-ups go (issue 11): the budget table of docs/benchmarks/footprint.md.

    python -m tests.bench.footprint_budget [--profiles A,B] [--seconds 60]

Runs `edgecollect run` (built-in defaults; B adds the Go sink of tests/interop as upstream) with a
watcher thread inside the process that, after a warm-up, reads:

- /proc/self/smaps grouped by mapping (libarrow, the interpreter, grpc, protobuf, [heap], anonymous
  mappings, ...): resident and anonymous kB of each;
- the Arrow memory pool (backend, bytes allocated), the rings (bytes of storage grown so far) and the
  series table (series held);
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

from tests.bench.bench_suite import machine

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

def watch():
    time.sleep(warmup)
    import gc, threading as th
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
    registries = [o for o in gc.get_objects() if type(o).__name__ == "SeriesRegistry"]
    doc = {"smaps": smaps(), "threads": threads, "minutes": seconds / 60,
           "arrow_pool": pa.default_memory_pool().backend_name, "arrow_allocated": pa.total_allocated_bytes(),
           "rings": {r.name: r.memory_bytes() for r in rings}, "series": sum(len(r) for r in registries)}
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
    open(out, "w").write(json.dumps(doc))
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, name="budget-watcher", daemon=True).start()
from edgecollect.cli import main
sys.exit(main(["run", "-c", sys.argv[1]]))
'''


def run_child(profile: str, tmp: Path, trace: bool, seconds: float, warmup: float) -> dict[str, Any]:
    d = tmp / f"{profile}-{'trace' if trace else 'plain'}"
    d.mkdir()
    config = f'[agent]\nstate_dir = "{d / "state"}"\nlog_level = "warning"\n'
    sink = None
    if profile == "B":
        from tests.support.sink import Sink

        sink = Sink(d / "sink.jsonl").start()
        config += f'[upstream]\nendpoint = "{sink.grpc_address}"\ntls = {{ insecure = true }}\n'
    (d / "agent.toml").write_text(config)
    out = d / "budget.json"
    try:
        subprocess.run([sys.executable, "-c", CHILD, str(d / "agent.toml"), str(out), "trace" if trace else "plain",
                        str(seconds), str(warmup)], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                       check=True, timeout=seconds + warmup + 120)
    finally:
        if sink is not None:
            sink.stop()
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
    print(f"profile {profile}: Python allocations by package (tracemalloc run, kB)")
    for name, size in list(traced.get("python_by_package", {}).items())[:12]:
        print(f"  {name:<30} {size // 1024:>7}")
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
    args = ap.parse_args()
    info = machine()
    print(f"footprint_budget on {info['cpu_model']} ({info['cpus']} cores), Python {info['python']}, "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}; {args.seconds:.0f} s window after {args.warmup:.0f} s")
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgecollect-budget-") as tmp:
        for profile in args.profiles.split(","):
            plain = run_child(profile, Path(tmp), False, args.seconds, args.warmup)
            traced = run_child(profile, Path(tmp), True, 5.0, args.warmup)
            show(profile, plain, traced)
            results[profile] = {"plain": plain, "traced": traced}
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=1))


if __name__ == "__main__":
    main()
