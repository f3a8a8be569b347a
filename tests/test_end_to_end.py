"""The whole agent against the reference decoder: host metrics spooled while the upstream is away
arrive exactly, through OTAP, once it comes back; the spool then empties."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from edgecollect.batch import from_ipc
from edgecollect.spooltool import scan
from tests.support.agent import AgentProcess
from tests.support.ports import free_port
from tests.support.sink import Sink

REPO = Path(__file__).resolve().parents[1]
OUTAGE_S = 60.0

PointKey = tuple[str, str, int]  # (metric name, attributes as sorted JSON, time in ns)


def spooled_points(spool: Path) -> tuple[set[int], set[PointKey]]:
    ids, points = set(), set()
    for _, batch, payload in scan(spool):
        if batch is None or batch.signal != "metrics":
            continue
        assert isinstance(payload, bytes)
        ids.add(batch.id)
        rb = from_ipc(payload)
        names = rb.column("name").to_pylist()
        attrs = rb.column("attributes").to_pylist()
        times = rb.column("time_unix_nano").cast(pa.int64()).to_pylist()
        for name, a, t in zip(names, attrs, times, strict=True):
            points.add((name, json.dumps(json.loads(a), sort_keys=True), t))
    return ids, points


def _otlp_value(v: dict[str, Any]) -> Any:
    for key in ("stringValue", "boolValue", "doubleValue"):
        if key in v:
            return v[key]
    return int(v["intValue"])


def received_points(sink: Sink) -> collections.Counter[PointKey]:
    seen: collections.Counter[PointKey] = collections.Counter()
    for rec in sink.records(signal="metrics"):
        for rm in rec["data"].get("resourceMetrics", []):
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    body = m.get("gauge") or m.get("sum") or {}
                    for dp in body.get("dataPoints", []):
                        attrs = {a["key"]: _otlp_value(a["value"]) for a in dp.get("attributes", [])}
                        attrs = {k: v for k, v in attrs.items() if not k.startswith("edgecollect.")}
                        seen[(m["name"], json.dumps(attrs, sort_keys=True), int(dp["timeUnixNano"]))] += 1
    return seen


@pytest.mark.integration
def test_outage_of_a_minute_then_everything_spooled_arrives(tmp_path: Path, record_property: Any) -> None:
    port = free_port()
    state = tmp_path / "state"
    config = tmp_path / "gw.toml"
    config.write_text(
        f"[agent]\nstate_dir = '{state}'\nself_interval = '5s'\n"
        "[batch]\nflush_interval = '2s'\n[sources.host]\ninterval = '1s'\n"
        f"[upstream]\nendpoint = '127.0.0.1:{port}'\nprotocol = 'otap'\ntls = {{ insecure = true }}\n"
        "retry_initial = '200ms'\nretry_max = '2s'\n"
    )
    agent = AgentProcess(config, state, tmp_path / "agent.log").start()
    sink = Sink(tmp_path / "sink.jsonl", grpc_port=port)
    try:
        time.sleep(OUTAGE_S)  # the outage itself: the upstream port has no listener
        assert agent.alive, "agent died while the upstream was down"
        spooled_ids, expected = spooled_points(state / "spool")
        # Counted as written, not as files: small files are merged while offline (compaction.py).
        status_doc = subprocess.run([sys.executable, "-m", "edgecollect", "status", "--json", "-c", str(config)],
                                    cwd=REPO, capture_output=True, text=True)
        written = sum(json.loads(status_doc.stdout)["counters"].get("edgecollect.spool.batches_written", {}).values())
        assert written >= OUTAGE_S / 2 * 0.8, f"only {written} batches spooled in {OUTAGE_S}s"

        sink.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not expected <= set(received_points(sink)):
            time.sleep(0.5)
        seen = received_points(sink)
        missing = expected - set(seen)
        duplicates = sum(seen[k] - 1 for k in expected if seen[k] > 1)
        print(
            f"outage {OUTAGE_S:.0f}s: {len(spooled_ids)} batches / {len(expected)} points spooled, "
            f"{len(expected) - len(missing)} arrived, {duplicates} duplicates, {len(missing)} missing"
        )
        record_property("spooled_points", len(expected))
        record_property("duplicates", duplicates)
        assert not missing, f"{len(missing)} spooled points never arrived, e.g. {sorted(missing)[:3]}"

        remaining = set()
        for _ in range(100):
            remaining = spooled_ids & spooled_points(state / "spool")[0]
            if not remaining:
                break
            time.sleep(0.2)
        assert not remaining, f"{len(remaining)} delivered batches still in the spool"
        status = subprocess.run(
            [sys.executable, "-m", "edgecollect", "status", "--json", "-c", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert json.loads(status.stdout)["upstream"]["state"] in ("connected", "idle")
    finally:
        code = agent.stop()
        sink.stop()
    assert code == 0, agent.tail(2000)
