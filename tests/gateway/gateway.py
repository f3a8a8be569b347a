"""The gateway Collector (packaging/gateway/) as a real process, and exact views of what passed
through it: every spooled point and every point the TSDB stand-in (the Go sink's OTLP/HTTP) got,
as comparable rows (resource, name, unit, kind, attributes, start, time, typed value)."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from edgecollect.batch import from_ipc
from edgecollect.spool import SUFFIX, Damaged, unframe
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
GATEWAY_DIR = REPO / "packaging" / "gateway"

Row = tuple[str, str, str, tuple[Any, ...], str, int, int, tuple[str, Any]]
_TEMPORALITY = {"delta": 1, "cumulative": 2, "updown": 2}


def build_gateway() -> Path:
    """packaging/gateway/build.sh: the cached binary, or a build (minutes) when the manifest changed."""
    proc = subprocess.run(["bash", str(GATEWAY_DIR / "build.sh")], capture_output=True, text=True,
                          timeout=3000, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"gateway build failed:\n{proc.stderr[-4000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


class Gateway:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.binary = build_gateway()
        self.otap_port, self.http_port = free_port(), free_port()
        self.log = workdir / "gateway.log"
        self.env = {**os.environ, **env, "GATEWAY_OTAP_ADDR": f"127.0.0.1:{self.otap_port}",
                    "GATEWAY_OTLP_HTTP_ADDR": f"127.0.0.1:{self.http_port}"}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gateway:
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([str(self.binary), "--config", str(GATEWAY_DIR / "config.yaml")],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "Everything is ready" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gateway did not start:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.2)
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def problems(self) -> list[str]:
        """Collector log lines at warn level or above."""
        return [line for line in self.log.read_text().splitlines()
                if any(f"\t{level}\t" in line for level in ("warn", "error", "panic", "fatal"))]


def _attrs(d: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, json.dumps(v, sort_keys=True)) for k, v in d.items()))


def spool_rows(directory: Path) -> list[Row]:
    """Every metrics row of the spool's batch files."""
    rows: list[Row] = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        with contextlib.suppress(Damaged):
            info, payload = unframe(path.read_bytes())
            if info.signal != "metrics":
                continue
            batch = from_ipc(payload)
            meta = batch.schema.metadata or {}
            resource = _attrs(json.loads(meta.get(b"edgecollect.resource", b"{}")))
            cols = {name: batch.column(name).to_pylist() for name in
                    ("name", "unit", "kind", "attributes", "double_value", "int_value", "flags")}
            starts = batch.column("start_time_unix_nano").cast("int64").to_pylist()
            times = batch.column("time_unix_nano").cast("int64").to_pylist()
            for i in range(batch.num_rows):
                assert cols["flags"][i] == 0, "the gateway test runs with a synced clock"
                value = (("int", cols["int_value"][i]) if cols["int_value"][i] is not None
                         else ("double", cols["double_value"][i]))
                rows.append((json.dumps(resource), cols["name"][i], cols["unit"][i],
                             _attrs(json.loads(cols["attributes"][i])), cols["kind"][i],
                             starts[i] or 0, times[i], value))
    return rows


def _any(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "boolValue" in v:
        return v["boolValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    raise AssertionError(f"unexpected attribute value {v}")


def _kind(metric: dict[str, Any]) -> str:
    if "gauge" in metric:
        return "gauge"
    s = metric["sum"]
    temporality, monotonic = s.get("aggregationTemporality"), s.get("isMonotonic", False)
    for kind, t in _TEMPORALITY.items():
        if t == temporality and monotonic == (kind != "updown"):
            return kind
    raise AssertionError(f"unexpected sum {temporality=} {monotonic=}")


def otlp_rows(documents: list[dict[str, Any]]) -> list[Row]:
    """Rows of OTLP/JSON ExportMetricsServiceRequests."""
    rows: list[Row] = []
    for doc in documents:
        for rm in doc.get("resourceMetrics", []):
            resource = _attrs({a["key"]: _any(a["value"]) for a in rm.get("resource", {}).get("attributes", [])})
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    kind = _kind(m)
                    points = (m.get("gauge") or m.get("sum") or {}).get("dataPoints", [])
                    for dp in points:
                        value = (("int", int(dp["asInt"])) if "asInt" in dp
                                 else ("double", float(dp.get("asDouble", 0.0))))
                        attrs = _attrs({a["key"]: _any(a["value"]) for a in dp.get("attributes", [])})
                        rows.append((json.dumps(resource), m["name"], m.get("unit", ""), attrs, kind,
                                     int(dp.get("startTimeUnixNano", 0)), int(dp["timeUnixNano"]), value))
    return rows


def multiset(rows: list[Row]) -> collections.Counter[Row]:
    return collections.Counter(rows)
