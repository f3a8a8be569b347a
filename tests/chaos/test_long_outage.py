"""A long outage, accelerated: the spool starts filled to its cap with numbered points (weeks of
readings, written ahead of time), the real agent runs with MQTT QoS 1 load and no upstream, so
every new batch makes room by the drop policy. Then the upstream comes back and the backlog drains.
[quick: 2 MiB cap and 30 s of load, full: 32 MiB and 5 min]

Outcomes: the agent's memory stays flat (RSS sampled from outside), the spool's files never exceed
the cap, what was dropped is counted (`edgecollect.spool.points_dropped{drop_oldest}`) and every
point not dropped arrives: published = delivered + dropped(counted), missing 0. Drain time and
rate are reported.
"""

from __future__ import annotations

import collections
import contextlib
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.chaos.harness import Tally, agent_toml, report, scale, sink_points, total
from tests.chaos.load import MqttLoad
from tests.exporters.conftest import Filler
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.ports import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CAP_MIB = scale(2, 32)
LOAD_SECONDS = scale(30, 300)
MQTT_RATE = 1000.0
BATCH_POINTS = 2000


class Sampler:
    """RSS of a process and bytes of a spool directory, sampled every 0.25 s on a thread."""

    def __init__(self, pid: int, spool: Path) -> None:
        self.proc = psutil.Process(pid)
        self.spool = spool
        self.rss: list[int] = []
        self.disk: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.rss.append(self.proc.memory_info().rss)
            except psutil.Error:
                return
            size = 0
            for p in self.spool.iterdir():
                if p.is_file():  # batch files and in-flight temp files; quarantine/ has its own cap
                    with contextlib.suppress(FileNotFoundError):
                        size += p.stat().st_size
            self.disk.append(size)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_long_outage_at_the_spool_cap_memory_flat_disk_capped_drops_counted(
    chaos_broker: Broker, make_sink: Callable[..., Any], agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    cap = CAP_MIB << 20
    state = tmp_path / "state"
    filler = Filler(state / "spool")
    while filler.spool.stats().bytes + 13_000 < cap:  # up to the cap, as after weeks offline
        filler.metrics(BATCH_POINTS)
    prefilled = filler.spool.stats()
    port = free_port()
    client_id = "chaos-outage"
    mqtt = MqttLoad(chaos_broker, client_id, MQTT_RATE)
    agent = agents(agent_toml(state, upstream_port=port, spool_max=f"{CAP_MIB}MiB",
                              mqtt=(chaos_broker.url, client_id, mqtt.topic_template)), state)
    agent.start()
    agent.wait_up()
    assert agent.proc is not None
    sampler = Sampler(agent.proc.pid, state / "spool")
    try:
        mqtt.start()
        time.sleep(LOAD_SECONDS)  # the outage: nothing listens on the upstream port
        mqtt.stop()
        wait_until(lambda: agent.counter("edgecollect.mqtt.messages") != {} and _ring_empty(agent), 60,
                 "the agent spooled what it received")
        dropped = agent.counter("edgecollect.spool.points_dropped")
        during = list(sampler.rss)
        sink = make_sink(grpc_port=port)
        healed = time.monotonic()
        sink.start()
        wait_until(lambda: (agent.status() or {}).get("spool", {}).get("files") == 0, 600, "the backlog drained", 0.2)
        drain_s = time.monotonic() - healed
    finally:
        sampler.close()
        mqtt.close()
    delivered = sink_points(sink)
    by_name: dict[str, collections.Counter[Any]] = collections.defaultdict(collections.Counter)
    for key, n in delivered.items():
        by_name["v" if key[0] == "v" else "prefill" if key[0].startswith("test.m") else "other"][key[3]] += n
    prefill = Tally("prefilled backlog", set(filler.values), by_name["prefill"],
                    dropped_counted=total(dropped, "drop_oldest"))
    live = Tally("mqtt qos1 during the outage", mqtt.acked(), by_name["v"])
    third = max(1, len(during) // 3)
    rss_first, rss_last = max(during[:third]), max(during[-third:])
    drained_points = sum(delivered.values())
    report("long outage at the spool cap", [prefill, live], cap_bytes=cap, prefilled_bytes=prefilled.bytes,
           prefilled_points=prefilled.points, load_seconds=LOAD_SECONDS, points_dropped=dropped,
           disk_max_bytes=max(sampler.disk), rss_first_third_max_mib=round(rss_first / 2**20, 1),
           rss_last_third_max_mib=round(rss_last / 2**20, 1),
           rss_median_mib=round(statistics.median(during) / 2**20, 1),
           drain_s=round(drain_s, 1), drain_points_per_s=round(drained_points / max(drain_s, 1e-3)))
    assert max(sampler.disk) <= cap, f"spool reached {max(sampler.disk)} bytes, cap {cap}"
    assert prefill.dropped_counted > 0, "the spool was at its cap: drop_oldest must have applied"
    # Only old prefilled points may be gone, and exactly as many as were counted.
    assert len(prefill.missing) == prefill.dropped_counted, (len(prefill.missing), dropped)
    assert min(prefill.published - prefill.missing, default=0) > max(prefill.missing, default=-1), "oldest first"
    assert not live.missing, f"{len(live.missing)} acked MQTT values missing"
    # Flat: the backlog at the cap does not grow the process (a leak per batch would).
    assert rss_last <= rss_first * 1.15 + (8 << 20), (rss_first, rss_last)


def _ring_empty(agent: AgentProcess) -> bool:
    st = agent.status() or {}
    return all(s.get("ring_points", 0) == 0 for s in st.get("sources", {}).values())
