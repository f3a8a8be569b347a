"""SIGHUP (reload) and SIGTERM (stop) under serial + MQTT load: whatever the agent had read before the
signal is in the spool afterwards. [quick: 3 reloads then a stop, full: 30 reloads]

A reload rebuilds the pipeline after flushing every ring; a stop flushes every ring and exits 0.
Frames read by the agent (its `serial.frames{ok}` counter has reached what the writer wrote) have no
other copy anywhere, so they must all be durable once the signal was handled.
"""

from __future__ import annotations

import collections
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.harness import Tally, agent_toml, report, scale, spool_points, total
from tests.chaos.load import MqttLoad, SerialLoad, start_loads
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

RELOADS = scale(3, 30)


def test_reload_and_stop_under_load_keep_everything_read(
    chaos_broker: Broker, agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    client_id = "chaos-signals"
    mqtt = MqttLoad(chaos_broker, client_id, 200.0)
    serial = SerialLoad(tmp_path / "ttyUSB-sig", 100.0)
    serial.paused.set()
    state = tmp_path / "state"
    # Offline: nothing leaves the spool, so the spool itself is the record of what became durable.
    agent = agents(agent_toml(state, host_interval="1s", flush="10s", mqtt=(chaos_broker.url, client_id,
                                                                           mqtt.topic_template),
                              serial_port=str(tmp_path / "ttyUSB-*")), state).start()

    def opens() -> int:
        return total(agent.counter("edgecollect.serial.port_opens"))

    read_before: set[int] = set()
    base = 0  # frames written before the running pipeline started: a reload starts new counters

    def uptime() -> float:
        return float((agent.status() or {}).get("uptime_s", 1e9))

    try:
        start_loads(agent, serial, mqtt)
        for i in range(RELOADS + 1):
            wait_until(lambda: len(serial.written) > base + 50, 30, "frames flowing")  # noqa: B023 - used at once
            serial.paused.set()
            # Frames the agent counted as parsed: in its ring now, flushed by the signal below.
            wait_until(lambda: agent.counter("edgecollect.serial.frames").get("ok", 0) >= len(serial.written) - base,  # noqa: B023
                     30, "the agent read every frame written")
            read_before = set(serial.written)
            assert agent.proc is not None
            if i == RELOADS:
                agent.proc.send_signal(signal.SIGTERM)
                assert agent.proc.wait(30) == 0, agent.tail()
                break
            up = uptime()
            agent.proc.send_signal(signal.SIGHUP)
            wait_until(lambda: uptime() < up and opens() >= 1, 30, f"reload {i}: a new pipeline with the port open")  # noqa: B023
            base = len(serial.written)
            serial.resync()
            serial.paused.clear()
    finally:
        mqtt.close()
        serial.close()
    spooled = [p for p in spool_points(state / "spool") if p[0] == "ser.n"]
    tally = Tally("serial frames read before each signal", read_before, collections.Counter(p[3] for p in spooled))
    report("SIGHUP reloads and SIGTERM under load", [tally], reloads=RELOADS, mqtt_sent=mqtt.sent())
    assert not tally.missing, f"{len(tally.missing)} frames read before the signal are not in the spool"
