"""kill -9 loop with write-behind on (the default): the upstream healthy the whole time, or dead the
whole time. [quick: 6 cycles each, full: 100]

With a healthy upstream most batches never touch the disk: an MQTT QoS 1 message is acked to the
broker once the upstream acked the batch holding it. With a dead one every batch is spooled first,
as with `mode = "always"`, and the small files are compacted while the agent runs (compaction.py),
so kills also land in the middle of merges. Either way every value the broker saw acknowledged (PUBACK) must reach
the sink in the end (design.md invariant 3), however the kills land: a held batch whose ack had not
come was never acked to the broker, which redelivers it. Duplicates are allowed and reported.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import Tally, agent_toml, report, rng, scale, sink_points, total
from tests.chaos.load import MqttLoad
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.ports import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CYCLES = scale(6, 100)
MQTT_RATE = 300.0  # messages/s


@pytest.mark.parametrize("upstream", ["healthy", "dead"])
def test_kill_9_loop_with_write_behind_loses_nothing_acknowledged(
    upstream: str, chaos_broker: Broker, make_sink: Callable[..., Any], agents: Callable[..., AgentProcess],
    tmp_path: Path,
) -> None:
    r = rng(f"kill9-writebehind-{upstream}")
    port = free_port()
    sink = make_sink(grpc_port=port)
    if upstream == "healthy":
        sink.start()
    client_id = f"chaos-wb-{upstream}-{r.randrange(1 << 30)}"
    mqtt = MqttLoad(chaos_broker, client_id, MQTT_RATE)
    state = tmp_path / "state"
    agent = agents(agent_toml(state, upstream_port=port, host_interval="1s",
                              mqtt=(chaos_broker.url, client_id, mqtt.topic_template)), state)
    spool_writes = merges = 0
    try:
        mqtt.start()
        for _ in range(CYCLES):
            agent.start()
            agent.wait_up()
            time.sleep(r.uniform(0.3, 2.5))
            spool_writes += total(agent.counter("edgecollect.spool.batches_written"))
            merges += total(agent.counter("edgecollect.spool.merges"), "ok")  # kills may land in one
            agent.kill9()
        mqtt.stop()
        sink.start()
        agent.start()
        agent.wait_up()
        try:
            wait_until(lambda: mqtt.acked() <= _values(sink, "v"), 180,
                     "every MQTT value the broker saw acknowledged at the sink", 0.5)
        finally:
            delivered = collections.Counter({k[3]: n for k, n in sink_points(sink).items() if k[0] == "v"})
            mq = Tally("mqtt qos1 (acked by broker)", mqtt.acked(), delivered)
            report(f"kill -9 loop, write-behind, upstream {upstream}", [mq], cycles=CYCLES,
                   mqtt_sent=mqtt.sent(), spool_writes_seen_before_kills=spool_writes,
                   compaction_merges_seen_before_kills=merges,
                   agent_starts=agent.starts)
        assert agent.alive, agent.tail()
    finally:
        mqtt.close()
    assert mqtt.acked(), "the broker acknowledged nothing: the test proved nothing"
    assert not mq.missing


def _values(sink: Any, metric: str) -> set[float]:
    return {k[3] for k in sink_points(sink) if k[0] == metric}
