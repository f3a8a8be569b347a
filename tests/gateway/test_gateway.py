"""The packaged gateway (packaging/gateway/: the OpenTelemetry Collector with the otelarrow
receiver) carries host, MQTT and serial data from a real agent, over TLS, to an OTLP/HTTP TSDB
(the Go sink stands in for it) without changing one value, timestamp, attribute, unit or kind, and
without a warning in its log.

Phase 1 collects offline, so the spool holds a known set of batches; phase 2 starts the same agent
with an upstream and only the spool to drain, and the TSDB must receive exactly those rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import agent_toml
from tests.chaos.load import MqttLoad, SerialLoad, start_loads
from tests.exporters.test_tls import Pki
from tests.gateway.gateway import Gateway, multiset, otlp_rows, spool_rows
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def _upstream(port: int, ca: Path) -> str:
    return (f'[upstream]\nendpoint = "localhost:{port}"\nprotocol = "otap"\n'
            f'tls = {{ ca_file = "{ca}" }}\nretry_initial = "100ms"\nretry_max = "1s"\n')


def test_gateway_forwards_agent_data_exactly(
        running_broker: Broker, make_sink: Callable[..., Any], agents: Callable[..., AgentProcess],
        pki: Pki, tmp_path: Path) -> None:
    state = tmp_path / "state"
    client_id = "gateway-test"
    mqtt = MqttLoad(running_broker, client_id, 20.0)
    serial = SerialLoad(tmp_path / "ttyACM-gw", 20.0)
    serial.paused.set()
    collecting = agents(agent_toml(state, host_interval="1s", self_interval="1h",
                                   mqtt=(running_broker.url, client_id, mqtt.topic_template),
                                   serial_port=str(tmp_path / "ttyACM-*")), state).start()
    try:
        start_loads(collecting, serial, mqtt)

        def sources_spooled() -> set[str]:
            names = {row[1] for row in spool_rows(state / "spool")}
            return ({"host"} if any(n.startswith("system.") for n in names) else set()) | \
                ({"serial"} if "ser.n" in names else set()) | ({"mqtt"} if "v" in names else set())

        wait_until(lambda: sources_spooled() == {"host", "serial", "mqtt"}, 120, "host, serial and MQTT points spooled")
    finally:
        mqtt.stop()
        serial.close()
        mqtt.close()
        collecting.stop()  # SIGTERM: rings are flushed into the spool
    spooled = spool_rows(state / "spool")

    tsdb = make_sink().start()
    env = {"GATEWAY_TLS_CERT": str(pki.server_cert), "GATEWAY_TLS_KEY": str(pki.server_key),
           "TSDB_OTLP_ENDPOINT": tsdb.http_url}
    with Gateway(tmp_path, env) as gateway:
        # Same agent, same spool, nothing new collected: it only drains what phase 1 spooled.
        drain = agent_toml(state, self_interval="1h") + _upstream(gateway.otap_port, pki.ca)
        forwarding = agents(drain, state).start()
        forwarding.wait_up()

        def received() -> list[Any]:
            docs = [r["data"] if isinstance(r["data"], dict) else json.loads(r["data"])
                    for r in tsdb.records(signal="metrics")]
            return otlp_rows(docs)

        wait_until(lambda: len(received()) >= len(spooled), 180, f"{len(spooled)} points at the TSDB")
        wait_until(lambda: not spool_rows(state / "spool"), 60, "the spool drained (every batch acked)")
        forwarding.stop()
        got = multiset(received())
        want = multiset(spooled)
        assert got == want, (f"missing {sum((want - got).values())}: {list((want - got).items())[:3]}; "
                             f"extra {sum((got - want).values())}: {list((got - want).items())[:3]}")
        assert gateway.problems() == []
