"""Broker restarts and serial unplugs during load, one real agent throughout, the Go sink up.
[quick: 8 of each, full: 50 of each]

MQTT: mosquitto is restarted (SIGTERM, persistence on) while the publisher keeps going; every value
the broker acknowledged must reach the sink. Serial: the pty disappears (symlink gone, both ends
closed) and comes back as a new pty under the same name, as a USB adapter does; the writer only
writes while the port is plugged in, and the unplug happens between frames once the agent has read
what was written, so every frame written must reach the sink.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import Tally, agent_toml, report, rng, scale, sink_points, total
from tests.chaos.load import MqttLoad, SerialLoad, start_loads
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

ROUNDS = scale(8, 50)


def test_broker_restarts_and_serial_unplugs_during_load_lose_nothing(
    chaos_broker: Broker, make_sink: Callable[..., Any], agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    r = rng("broker-serial")
    sink = make_sink().start()
    client_id = "chaos-faults"
    mqtt = MqttLoad(chaos_broker, client_id, 300.0)
    serial = SerialLoad(tmp_path / "ttyACM-chaos", 100.0)
    serial.paused.set()
    state = tmp_path / "state"
    agent = agents(agent_toml(state, upstream_port=sink.ports["grpc"], host_interval="2s",
                              mqtt=(chaos_broker.url, client_id, mqtt.topic_template),
                              serial_port=str(tmp_path / "ttyACM-*")), state).start()

    def opens() -> int:
        return total(agent.counter("edgecollect.serial.port_opens"))

    def frames_ok() -> int:
        return agent.counter("edgecollect.serial.frames").get("ok", 0)

    try:
        start_loads(agent, serial, mqtt)
        for i in range(ROUNDS):
            chaos_broker.restart()
            wait_until(lambda: mqtt.pub.connected.is_set(), 30, f"round {i}: publisher reconnected")
            time.sleep(r.uniform(0.3, 1.5))  # load goes on between the two faults
            before = opens()
            serial.paused.set()
            wait_until(lambda: frames_ok() >= len(serial.written), 30, f"round {i}: the agent read every frame")
            serial.unplug()
            time.sleep(r.uniform(0.1, 1.0))  # unplugged for a while
            serial.plug()
            wait_until(lambda: opens() > before, 30, f"round {i}: the port reopened")  # noqa: B023 - used at once
            serial.resync()
            serial.paused.clear()
            agent.wait_up()
        serial.paused.set()
        mqtt.stop()
        wait_until(lambda: frames_ok() >= len(serial.written), 30, "the agent read every frame")
        want_mqtt, want_serial = mqtt.acked(), set(serial.written)

        def arrived() -> bool:
            got = sink_points(sink)
            mqtt_got = {k[3] for k in got if k[0] == "v"}
            return want_mqtt <= mqtt_got and want_serial <= {k[3] for k in got if k[0] == "ser.n"}

        try:
            wait_until(arrived, 120, "every acked MQTT value and every written frame at the sink", 0.5)
        finally:
            by_name: dict[str, collections.Counter[Any]] = collections.defaultdict(collections.Counter)
            for key, n in sink_points(sink).items():
                by_name[key[0]][key[3]] += n
            mq = Tally("mqtt qos1 (acked by broker)", want_mqtt, by_name["v"])
            ser = Tally("serial frames written", want_serial, by_name["ser.n"])
            report("broker restarts and serial unplugs during load", [mq, ser], broker_restarts=ROUNDS,
                   serial_unplugs=ROUNDS, broker_starts=chaos_broker.starts, port_opens=opens(),
                   mqtt_connects=agent.counter("edgecollect.mqtt.connects"), mqtt_sent=mqtt.sent())
        assert agent.alive, agent.tail()
    finally:
        mqtt.close()
        serial.close()
    assert not mq.missing and not ser.missing
