"""Fleet benchmark: N agents' forwarders, each with its own identity, against ONE gateway (the
packaged OpenTelemetry Collector of packaging/gateway/, OTAP over TLS, batch processor, OTLP/HTTP
to a TSDB stand-in: the Go interop sink writing to /dev/null).

    python -m tests.bench.fleet --agents 100 [--batches 100] [--points N]

Each agent gets its own spool pre-filled with `--batches` batches of `--points` host-like points
(default: the size an agent cuts every flush_interval at the default cadence) under its own
resource (host.name, host.id); all forwarders then drain at once, each on its own gRPC channel, as
a fleet coming back after an outage would. The figure that scales is the gateway's CPU time per
point (psutil, user + system of the Collector process), not wall time: on a shared 2-core box the
agents' Python competes with the gateway, so wall-clock throughput understates a real gateway core.
From it:

    points/s per gateway core  = points delivered / gateway CPU seconds
    agents per gateway core    = that / points/s of one agent at the default cadence
    gateways for 10,000 Pis    = ceil(10,000 / agents one gateway carries at 50 % headroom, by CPU
                                 or by memory per connected agent, whichever is lower), at least 2

One agent's default-cadence rate is measured, not assumed: a real Agent runs the default host and
self-telemetry sources and the points per scrape are divided by the default intervals.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil

from edgecollect.batch import build_metrics, to_ipc
from edgecollect.config import AgentConfig, BatchConfig, loads
from edgecollect.exporters.forwarder import Forwarder
from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig
from edgecollect.model import Resource, SeriesRegistry, attrs
from edgecollect.runtime import Agent
from edgecollect.sources.host import HostConfig
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from tests.core.batches import host_like_rows
from tests.gateway.gateway import Gateway
from tests.support.machine import cpu_model
from tests.support.sink import Sink

PIS = 10_000
HEADROOM = 0.5  # plan gateways at half their measured capacity (failover of a peer, bursts after outages)



def default_cadence_points_per_s(workdir: Path) -> float:
    """Points/s one agent produces at the default host and self intervals: a real Agent scrapes at
    1 s for a while; each source's rate is scaled by 1 s / its default interval (a scrape emits the
    same points whatever the interval)."""
    cfg = loads(f'[agent]\nstate_dir = "{workdir}"\nself_interval = "1s"\n[sources.host]\ninterval = "1s"\n')
    agent = Agent(cfg)
    agent.start()

    def points() -> tuple[int, int]:
        snap = agent.telemetry.snapshot()
        return (sum(snap["edgecollect.host.points_accepted{source=host}"].values()),
                sum(snap["edgecollect.self.points_accepted{source=self}"].values()))

    try:
        time.sleep(3.0)  # first scrapes done, series interned
        (h0, s0), t0 = points(), time.monotonic()
        time.sleep(10.0)
        (h1, s1), t1 = points(), time.monotonic()
    finally:
        agent.shutdown()
    elapsed = t1 - t0
    return (h1 - h0) / elapsed / HostConfig().interval + (s1 - s0) / elapsed / AgentConfig().self_interval


def gateway_cpu_when_idle(gw: psutil.Process) -> float:
    """The gateway's CPU seconds once it stopped working (its batch processor and exporter run
    after the receiver acked the agents)."""
    last = sum(gw.cpu_times()[:2])
    quiet = 0
    while quiet < 4:
        time.sleep(0.5)
        now = sum(gw.cpu_times()[:2])
        quiet = quiet + 1 if now - last < 0.02 else 0
        last = now
    return last


def self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "gw.pem", directory / "gw.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def fill_spool(directory: Path, index: int, batches: int, points: int) -> Spool:
    spool = Spool(directory, Telemetry())
    spool.open()
    resource = Resource(attrs({"host.name": f"pi-{index:05}", "host.id": f"{index:032x}",
                               "service.name": "edgecollect"}))
    for b in range(batches):
        registry = SeriesRegistry()
        rows = host_like_rows(registry, points, seed=index * 1000 + b,
                              t0_ns=1_790_000_000_000_000_000 + b * 10**12)
        spool.append("metrics", to_ipc(build_metrics(rows, registry, resource, f"boot-{index}")), points)
    return spool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--batches", type=int, default=100, help="batches spooled per agent")
    parser.add_argument("--points", type=int, default=0,
                        help="points per batch; default: what one agent cuts per flush_interval at the default cadence")
    parser.add_argument("--gateway-cores", type=int, default=4, help="cores of a production gateway box")
    parser.add_argument("--gateway-memory-gib", type=int, default=8, help="memory of a production gateway box")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        work = Path(tmp)
        per_agent = default_cadence_points_per_s(work / "cadence")
        # At the default cadence an agent sends one small batch per flush_interval: per-batch costs,
        # not per-point ones, decide what a gateway carries, so the bench sends batches of that size.
        args.points = args.points or max(1, round(per_agent * BatchConfig().flush_interval))
        cert, key = self_signed(work)
        spools = [fill_spool(work / f"agent{i:04}", i, args.batches, args.points) for i in range(args.agents)]
        total_points = args.agents * args.batches * args.points
        with Sink(Path("/dev/null")) as tsdb, \
                Gateway(work, {"GATEWAY_TLS_CERT": str(cert), "GATEWAY_TLS_KEY": str(key),
                               "TSDB_OTLP_ENDPOINT": tsdb.http_url}) as gateway:
            assert gateway.proc is not None
            gw = psutil.Process(gateway.proc.pid)
            stop = threading.Event()
            cfg = UpstreamConfig(endpoint=f"localhost:{gateway.otap_port}", tls=TlsConfig(ca_file=str(cert)))
            forwarders = [Forwarder(cfg, spool, Telemetry(), stop) for spool in spools]
            rss0 = peak_rss = gw.memory_info().rss
            cpu0, t0 = sum(gw.cpu_times()[:2]), time.monotonic()
            threads = [threading.Thread(target=f.run, daemon=True) for f in forwarders]
            for t in threads:
                t.start()
            deadline = time.monotonic() + 1800
            while any(s.stats().files for s in spools):
                if time.monotonic() > deadline:
                    raise SystemExit("the fleet did not drain within 30 min")
                peak_rss = max(peak_rss, gw.memory_info().rss)
                time.sleep(0.2)
            wall = time.monotonic() - t0
            gw_cpu = gateway_cpu_when_idle(gw) - cpu0
            stop.set()
            for f in forwarders:
                f.notify()
            for t in threads:
                t.join(30)
            problems = gateway.problems()

    per_core = total_points / gw_cpu
    agents_per_core = per_core / per_agent
    rss_per_agent = max(1, peak_rss - rss0) / args.agents
    by_cpu = agents_per_core * args.gateway_cores * HEADROOM
    by_memory = args.gateway_memory_gib * 1024**3 * HEADROOM / rss_per_agent
    gateways = max(2, math.ceil(PIS / min(by_cpu, by_memory)))  # never fewer than 2: one may fail
    print(f"fleet bench {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, gateway {gateway.binary.name}")
    print(f"agents: {args.agents} forwarders (distinct resource + channel), {args.batches} x {args.points} "
          f"points each = {total_points} points, OTAP over TLS")
    print(f"drained in {wall:.1f} s wall ({total_points / wall:,.0f} points/s, agents and gateway sharing "
          f"{os.cpu_count()} cores); gateway CPU {gw_cpu:.1f} s")
    print(f"points/s per gateway core: {per_core:,.0f} ({per_core / args.points:,.0f} batches/s)")
    print(f"one agent at the default cadence (host every {HostConfig().interval:.0f} s, self every "
          f"{AgentConfig().self_interval:.0f} s): {per_agent:.2f} points/s")
    print(f"agents one gateway core can carry: {agents_per_core:,.0f}")
    print(f"gateway memory: {rss0 / 2**20:.0f} MiB idle, peak {peak_rss / 2**20:.0f} MiB with {args.agents} "
          f"streams: {rss_per_agent / 1024:.0f} KiB per connected agent")
    print(f"one gateway of {args.gateway_cores} cores / {args.gateway_memory_gib} GiB at {HEADROOM:.0%} headroom "
          f"carries {min(by_cpu, by_memory):,.0f} agents (CPU allows {by_cpu:,.0f}, memory {by_memory:,.0f})")
    print(f"gateways for {PIS:,} Pis (at least 2, for failover): {gateways}")
    print(f"gateway log warnings/errors: {len(problems)}")
    for line in problems[:5]:
        print("  " + line)


if __name__ == "__main__":
    main()
