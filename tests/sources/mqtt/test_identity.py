"""Reordering two [[sources.mqtt]] tables keeps each source's broker session: the default client id
comes from the source's name (broker + topics), not its place in the file.

A real agent and a real mosquitto: the agent subscribes with both sources and stops; while it is
down the broker queues QoS 1 messages for both sessions; the agent starts again from the file with
the two tables swapped. Each session must be taken up by the source that subscribed it: every
queued message arrives under its own rule and reaches the spool (with position as identity, each
source would resume the other's session and drop its queue as unmatched).
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import pytest

from edgecollect.batch import from_ipc
from edgecollect.sources.mqtt.client import default_client_id
from edgecollect.spool import SUFFIX, unframe
from tests.sources.mqtt.mqtt_support import Publisher
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

QUEUED = 200  # per source, published while the agent is down


def write_config(path: Path, state: Path, broker: Broker, prefixes: list[str]) -> None:
    tables = "".join(f"""
[[sources.mqtt]]
server = "{broker.url}"
qos = 1
reconnect_min = "50ms"
reconnect_max = "1s"
  [[sources.mqtt.subscribe]]
  topic = "{prefix}/{{device}}/{{metric}}"
  format = "plain"
""" for prefix in prefixes)
    path.write_text(f"""
[agent]
state_dir = "{state}"
log_level = "warning"
clock = "assume_synced"
[batch]
flush_interval = "200ms"
[sources.host]
enabled = false
{tables}""", encoding="utf-8")


def subscribed_sources(agent: AgentProcess) -> set[str]:
    """The MQTT sources of the running agent whose subscription the broker granted."""
    status = agent.status() or {}
    out = set()
    for key, values in status.get("counters", {}).items():
        if key.startswith("edgecollect.mqtt.connects{source=") and values.get("subscribed", 0) > 0:
            out.add(key.split("source=", 1)[1].rstrip("}"))
    return out


def spooled(state: Path) -> dict[str, list[int]]:
    """Every integer value in the spool, by metric name."""
    out: dict[str, list[int]] = {}
    for path in sorted((state / "spool").glob(f"*{SUFFIX}")):
        info, payload = unframe(path.read_bytes())
        if info.signal != "metrics":
            continue
        batch = from_ipc(payload)
        for name, value in zip(batch.column("name").to_pylist(), batch.column("int_value").to_pylist(), strict=True):
            if value is not None:
                out.setdefault(name, []).append(value)
    return out


def connections_as(broker: Broker, client_id: str) -> int:
    return broker.log.read_text(errors="replace").count(f" as {client_id} ")


def test_swapping_two_mqtt_tables_keeps_each_broker_session(running_broker: Broker, tmp_path: Path) -> None:
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    prefixes = [f"ida{tag}", f"idb{tag}"]
    config, state, log = tmp_path / "agent.toml", tmp_path / "state", tmp_path / "agent.log"
    write_config(config, state, broker, prefixes)
    agent = AgentProcess(config, state, log).start()
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    try:
        wait_until(lambda: len(subscribed_sources(agent)) == 2, 60, "both sources subscribed")
        names = subscribed_sources(agent)
        client_ids = {default_client_id(socket.gethostname(), name) for name in names}
        assert all(connections_as(broker, cid) == 1 for cid in client_ids), (client_ids, broker.log.read_text()[-2000:])
        assert agent.stop() == 0, agent.tail()

        # The agent is away: the broker queues these for the two persistent sessions.
        infos = [pub.publish(f"{prefix}/meter/v{prefix[2]}", str(i)) for i in range(QUEUED) for prefix in prefixes]
        pub.wait_published(infos)

        write_config(config, state, broker, list(reversed(prefixes)))
        agent.start()
        wanted = {"va": list(range(QUEUED)), "vb": list(range(QUEUED))}
        wait_until(lambda: len(subscribed_sources(agent)) == 2, 60, "both sources subscribed again")
        assert subscribed_sources(agent) == names, "the same names after the swap"
        assert all(connections_as(broker, cid) == 2 for cid in client_ids), "the same client ids after the swap"
        def arrived() -> dict[str, list[int]]:
            have = spooled(state)
            return {metric: sorted(set(have.get(metric, []))) for metric in wanted}

        wait_until(lambda: arrived() == wanted, 60, lambda: "every queued message spooled under its own rule; "
                   f"have {[len(v) for v in arrived().values()]} of {QUEUED} each")
        status = agent.status() or {}
        unmatched = sum(v.get("unmatched", 0) for k, v in status.get("counters", {}).items()
                        if k.startswith("edgecollect.mqtt.messages"))
        assert unmatched == 0, "no source was handed the other's session"
    finally:
        pub.close()
        agent.stop()
