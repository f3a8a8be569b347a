"""The whole agent, a real mosquitto, QoS 1 into an open aggregate window: kill -9 loses nothing
that was acked (the window's messages are not acked until the window is durable), and SIGTERM
flushes the window and acks it before disconnecting, so the next start sees nothing twice."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pyarrow as pa
import pytest

from edgecollect.batch import from_ipc
from edgecollect.spool import SUFFIX, unframe
from edgecollect.status import SOCKET_NAME, query
from tests.sources.mqtt.mqtt_support import Publisher, subscribe_once
from tests.support.agent import AgentProcess
from tests.support.broker import Broker, broker, running_broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration
N = 120
__all__ = ["broker", "running_broker"]  # the session broker fixtures, used here


def aggregated(spool: Path) -> tuple[int, float]:
    """(sum of `v.count`, sum of `v.count` × `v.mean`) over every spooled window."""
    count, total = 0, 0.0
    for path in sorted(spool.glob(f"*{SUFFIX}")):
        info, payload = unframe(path.read_bytes())
        if info.signal != "metrics":
            continue
        batch = from_ipc(payload)
        batch = batch.set_column(5, "time_unix_nano", batch.column("time_unix_nano").cast(pa.int64()))
        rows = batch.select(["name", "attributes", "time_unix_nano", "double_value", "int_value"]).to_pylist()
        means = {(r["time_unix_nano"], r["attributes"]): r["double_value"] for r in rows if r["name"] == "v.mean"}
        for r in rows:
            if r["name"] == "v.count":
                count += r["int_value"]
                total += r["int_value"] * means[(r["time_unix_nano"], r["attributes"])]
            assert r["name"] != "v", "raw points must not reach the spool"
    return count, total


def markers(spool: Path) -> int:
    found = 0
    for path in sorted(spool.glob(f"*{SUFFIX}")):
        info, payload = unframe(path.read_bytes())
        if info.signal == "metrics":
            found += from_ipc(payload).column("name").to_pylist().count("m")
    return found


def test_kill_9_with_an_open_window_loses_no_acked_message_and_sigterm_acks_it(
    running_broker: Broker,
    tmp_path: Path,
) -> None:
    mosquitto = running_broker
    tag = uuid.uuid4().hex[:8]
    client_id = f"agg-{tag}"
    state, config, log = tmp_path / "state", tmp_path / "agent.toml", tmp_path / "agent.log"
    config.write_text(f"""
[agent]
state_dir = "{state}"
log_level = "warning"
clock = "assume_synced"
shutdown_timeout = "10s"
[batch]
flush_interval = "200ms"
[sources.host]
enabled = false
[[sources.mqtt]]
name = "agg"
server = "{mosquitto.url}"
client_id = "{client_id}"
protocol = "5"
qos = 1
  [[sources.mqtt.subscribe]]
  topic = "agg{tag}/{{device}}/{{metric}}"
  format = "plain"

[[processors]]
kind = "aggregate"
metrics = ["v"]
window = "1d"
functions = ["mean", "count"]
""")
    subscribe_once(mosquitto.host, mosquitto.port, client_id, f"agg{tag}/+/+", 1)
    pub = Publisher(mosquitto.host, mosquitto.port, f"pub-{tag}")
    agent = AgentProcess(config, state, log).start()

    def counter(noun: str, label: str) -> int:
        try:
            status = query(state / SOCKET_NAME)
        except (OSError, ValueError):
            return -1
        if status.get("pid") != agent.pid:
            return -1
        return int(status["counters"].get(f"edgecollect.mqtt.{noun}{{source=mqtt.agg}}", {}).get(label, 0))

    try:
        wait_until(lambda: counter("connects", "subscribed") >= 1, 60, "agent up and subscribed")
        pub.wait_published([pub.publish(f"agg{tag}/meter/v", str(i)) for i in range(N)])
        wait_until(lambda: counter("messages", "ok") >= N, 60, f"{N} messages in the agent")
        # A raw marker after them: once it is durable the batcher has cut past all N messages.
        pub.wait_published([pub.publish(f"agg{tag}/meter/m", "7")])
        wait_until(lambda: markers(state / "spool") >= 1, 60, "the marker durable")
        time.sleep(1.0)  # room for a wrong ack to leave (only a broken build sends one)
        assert counter("acks", "durable") == 0, "a message in an open window was acked"
        agent.kill9()
        assert aggregated(state / "spool") == (0, 0.0)

        agent.start()  # the broker redelivers all N and the marker: none was acked
        wait_until(lambda: counter("messages", "ok") >= N + 1, 60, f"{N + 1} messages redelivered")
        assert counter("acks", "durable") == 0
        assert agent.stop() == 0, agent.tail(3000)
        assert aggregated(state / "spool") == (N, float(sum(range(N))))

        agent.start()  # acked at SIGTERM: nothing comes again
        wait_until(lambda: counter("connects", "subscribed") >= 1, 60, "third start subscribed")
        pub.wait_published([pub.publish(f"agg{tag}/meter/v", "1000")])
        wait_until(lambda: counter("messages", "ok") >= 1, 60, "the new message")
        assert counter("messages", "ok") == 1
        assert agent.stop() == 0, agent.tail(3000)
        assert aggregated(state / "spool") == (N + 1, float(sum(range(N)) + 1000))
    finally:
        pub.close()
        agent.kill9()
