"""Upstream faults while batches keep arriving: the real Forwarder and exporter talk to the Go
sink through a loopback TCP proxy that resets connections, black-holes them and slows them down,
while the sink itself slows its acks, answers UNAVAILABLE in bursts and restarts.
Over OTAP, OTLP/gRPC and OTLP/HTTP. [quick: 30 s of faults each, full: 30 min each]

Every spooled point is numbered; afterwards the link heals and every one must arrive (duplicates
allowed and reported), and the spool must end empty: nothing was deleted before it was acked.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.chaos.harness import FaultProxy, Tally, report, rng, scale
from tests.exporters.conftest import Filler, config, forwarding, log_bodies, metric_values
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

FAULT_SECONDS = scale(30, 1800)  # per protocol
FAULTS = ("reset", "blackhole", "slow", "slow_acks", "unavailable_burst", "random_unavailable", "sink_restart", "pass")


@pytest.mark.parametrize("protocol", ["otap", "otlp_grpc", "otlp_http"])
def test_upstream_faults_through_a_proxy_lose_nothing(
    make_sink: Callable[..., Any], filler: Filler, protocol: str,
) -> None:
    r = rng(f"upstream-{protocol}")
    sink = make_sink().start()
    http = protocol == "otlp_http"
    proxy = FaultProxy(sink.ports["http" if http else "grpc"])
    applied: collections.Counter[str] = collections.Counter()
    stop = threading.Event()
    endpoint = f"http://127.0.0.1:{proxy.port}" if http else f"127.0.0.1:{proxy.port}"
    cfg = config(endpoint, protocol=protocol, retry_initial=0.05, retry_max=1.0, timeout=2.0, max_stream_lifetime=5.0)

    chaos_errors: list[BaseException] = []

    def chaos() -> None:
        try:
            apply_faults()
        except BaseException as exc:  # surfaced in the test thread: a dead chaos loop would leave the sink down
            chaos_errors.append(exc)
            raise

    def apply_faults() -> None:
        order: list[str] = []
        while not stop.is_set():
            if not order:
                order = list(FAULTS)  # every fault once per round, in a new order each round
                r.shuffle(order)
            fault = order.pop()
            applied[fault] += 1
            if fault in ("reset", "blackhole", "slow"):
                proxy.set(fault)
            elif fault == "slow_acks":
                sink.set(ack_delay_ms=r.choice([200, 800, 2500]))
            elif fault == "unavailable_burst":
                sink.set(mode="unavailable")
            elif fault == "random_unavailable":
                sink.set(random_unavailable=0.5)
            elif fault == "sink_restart":
                sink.restart()
            stop.wait(r.uniform(0.5, 4.0))
            proxy.set("pass")
            if sink.running:
                sink.set(mode="ok", ack_delay_ms=0, random_unavailable=0.0)
            else:
                sink.start()

    started = time.monotonic()
    try:
        with forwarding(cfg, filler) as fwd:
            chaos_thread = threading.Thread(target=chaos, name="chaos", daemon=True)
            chaos_thread.start()
            while time.monotonic() - started < FAULT_SECONDS:
                filler.metrics(r.randint(20, 400))
                if r.random() < 0.2:
                    filler.logs(r.randint(1, 30))
                fwd.notify()  # as the batcher does after each spool write
                time.sleep(r.uniform(0.02, 0.2))
            stop.set()
            chaos_thread.join(30)
            assert not chaos_thread.is_alive(), "the chaos thread did not stop within 30 s"
            if chaos_errors:
                raise AssertionError("the chaos thread failed, so the faults stopped early") from chaos_errors[0]
            healed_at = time.monotonic()
            wait_until(lambda: filler.spool.stats().files == 0, 240, "the spool drained after the faults", 0.2)
            drain_s = time.monotonic() - healed_at
            status = fwd.status()
    finally:
        stop.set()
        proxy.close()
    tally = Tally("numbered points", set(filler.values), metric_values(sink.records(signal="metrics")))
    logs = Tally("log records", set(filler.log_bodies), log_bodies(sink.records(signal="logs")))
    retries = filler.telemetry.find("edgecollect.upstream.retries")
    report(f"upstream faults through a TCP proxy ({protocol})", [tally, logs], fault_seconds=FAULT_SECONDS,
           faults=dict(applied),
           batches=len(filler.batch_values), proxy_connections=proxy.connections, proxy_resets=proxy.resets,
           retries=retries.snapshot() if retries else {}, drain_after_heal_s=round(drain_s, 1),
           final_state=status.state)
    assert set(applied) == set(FAULTS), f"not every fault was applied: {dict(applied)}"
    assert not tally.missing, f"{len(tally.missing)} points never arrived: {sorted(tally.missing)[:10]}"
    assert not logs.missing, f"{len(logs.missing)} log records never arrived: {sorted(logs.missing)[:10]}"
    assert not set(tally.delivered) - tally.published, "the sink saw values nobody spooled"
