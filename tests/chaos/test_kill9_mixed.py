"""kill -9 loop under mixed load: host metrics, MQTT QoS 1 and SLF/1 serial at once, with the Go sink
going up and down between cycles. [quick: 8 cycles, full: 200]

Accounting, per stream:
* MQTT: every value the broker acknowledged (PUBACK) must reach the sink: the agent acks a QoS 1
  message only once it is durable, and the broker redelivers what was not acked before a kill.
* serial and host: every point that was ever durable (seen in a batch file in the spool, read-only,
  from the test) must reach the sink: a spooled batch is deleted only after the upstream acked it.
  A serial line has no acknowledgement, so frames written while the agent is down (the port is
  flushed when it opens) or still in its memory at a kill are lost by design: reported as
  `serial_never_durable`, not asserted.
Duplicates are allowed (at-least-once) and reported.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import SpoolWatcher, Tally, agent_toml, report, rng, scale, sink_points
from tests.chaos.load import MqttLoad, SerialLoad
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.ports import free_port
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

CYCLES = scale(8, 200)
MQTT_RATE = 300.0  # messages/s
SERIAL_RATE = 100.0  # frames/s


def test_kill_9_loop_under_mixed_load_loses_nothing_acknowledged(
    chaos_broker: Broker, make_sink: Callable[..., Any], agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    r = rng("kill9")
    port = free_port()
    sink = make_sink(grpc_port=port)
    client_id = f"chaos-kill9-{r.randrange(1 << 30)}"
    mqtt = MqttLoad(chaos_broker, client_id, MQTT_RATE)
    serial = SerialLoad(tmp_path / "ttyUSB-chaos", SERIAL_RATE)
    state = tmp_path / "state"
    agent = agents(agent_toml(
        state, upstream_port=port, host_interval="1s",
        mqtt=(chaos_broker.url, client_id, mqtt.topic_template), serial_port=str(tmp_path / "ttyUSB-*"),
    ), state)
    sink_flips = 0
    try:
        with SpoolWatcher(state / "spool") as watcher:
            mqtt.start()
            serial.start()
            for _ in range(CYCLES):
                if r.random() < 0.5:
                    if sink.running:
                        sink.stop()
                    else:
                        sink.start()
                    sink_flips += 1
                agent.start()
                agent.wait_up()
                # Under load for a while, then the kill lands wherever the agent happens to be.
                time.sleep(r.uniform(0.3, 2.5))
                agent.kill9()
            serial.stop()
            mqtt.stop()
            sink.start()
            agent.start()
            agent.wait_up()
            durable_snapshot: set[Any] = set()

            def caught_up() -> bool:
                watcher.scan()
                durable_snapshot.clear()
                durable_snapshot.update(watcher.points)
                return durable_snapshot <= set(sink_points(sink)) and mqtt.acked() <= _values(sink, "v")

            try:
                wait_until(caught_up, 180, "every acknowledged MQTT value and every durable point at the sink", 0.5)
            finally:
                delivered = sink_points(sink)
                by_name: dict[str, collections.Counter[Any]] = collections.defaultdict(collections.Counter)
                for key, n in delivered.items():
                    by_name[key[0]][key[3]] += n
                mq = Tally("mqtt qos1 (acked by broker)", mqtt.acked(), by_name["v"])
                ser_durable = {k[3] for k in durable_snapshot if k[0] == "ser.n"}
                ser = Tally("serial (durable)", ser_durable, by_name["ser.n"])
                host = Tally("host+self (durable)", {k for k in durable_snapshot if k[0] not in ("v", "ser.n")},
                             collections.Counter({k: n for k, n in delivered.items() if k[0] not in ("v", "ser.n")}))
                report("kill -9 loop under mixed load", [mq, ser, host], cycles=CYCLES, sink_flips=sink_flips,
                       mqtt_sent=mqtt.sent(), serial_written=len(serial.written),
                       serial_never_durable=len(set(serial.written) - ser_durable),
                       agent_starts=agent.starts)
            assert agent.alive, agent.tail()
    finally:
        mqtt.close()
        serial.close()
    assert not mq.missing and not ser.missing and not host.missing


def _values(sink: Any, metric: str) -> set[float]:
    return {k[3] for k in sink_points(sink) if k[0] == metric}
