"""A payload above `max_payload` costs no lasting memory, whatever the MQTT protocol version.

MQTT 5: the agent's CONNECT carries Maximum Packet Size, so mosquitto never sends the payload at
all. MQTT 3.1.1 cannot refuse a packet: it is read, counted `too_large`, acked, and the memory
paho used for it is handed back at once. Both are checked on a real agent process (RSS from /proc)
against a real broker, with 24 MiB payloads; a small message before and after each proves the
session kept going.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

BIG = 24 << 20  # under glibc's 32 MiB ceiling for a heap-served block: where freed memory lingered
SENDS = 5
WARMUP = 5  # small messages (and their batches) first: the first flush loads codecs once
RSS_SLACK_KB = 8 * 1024  # before the fix: +99 MB (3.1.1) and +89 MB (5) after five such payloads


def _rss_kb(agent: AgentProcess) -> int:
    assert agent.proc is not None
    for line in Path(f"/proc/{agent.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _config(state: Path, broker: Broker, protocol: str) -> str:
    return (f'[agent]\nstate_dir = "{state}"\nlog_level = "warning"\nclock = "assume_synced"\n'
            'self_interval = "1h"\n[batch]\nflush_interval = "200ms"\n[sources.host]\nenabled = false\n'
            f'[[sources.mqtt]]\nserver = "{broker.url}"\nclient_id = "oversize-{protocol}"\nprotocol = "{protocol}"\n'
            'qos = 1\nmax_payload = "256KiB"\n'
            '  [[sources.mqtt.subscribe]]\n  topic = "big/{device}"\n  format = "plain"\n  name = "v"\n')


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_oversized_payloads_cost_no_lasting_memory(
    protocol: str, chaos_broker: Broker, agents: Callable[..., AgentProcess], tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    agent = agents(_config(state, chaos_broker, protocol), state).start()
    agent.wait_up()
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"oversize-pub-{protocol}")
    pub.connect(chaos_broker.host, chaos_broker.port)
    pub.loop_start()

    def messages() -> dict[str, int]:
        return agent.counter("edgecollect.mqtt.messages")

    def subscribed() -> bool:
        return agent.counter("edgecollect.mqtt.connects").get("subscribed", 0) >= 1

    try:
        wait_until(subscribed, 60, "the agent's subscription")
        for i in range(WARMUP):
            pub.publish("big/d1", str(i).encode(), qos=1).wait_for_publish(30)
            wait_until(lambda: messages().get("ok", 0) >= i + 1, 60, f"warm-up message {i}")  # noqa: B023
            wait_until(lambda: any((state / "spool").glob("*.ecb")), 60, "a batch in the spool")
        before = _rss_kb(agent)
        for i in range(SENDS):
            pub.publish("big/d1", b"7" * BIG, qos=1).wait_for_publish(60)
            pub.publish("big/d1", str(i).encode(), qos=1).wait_for_publish(30)
            wait_until(lambda: messages().get("ok", 0) >= WARMUP + i + 1, 60, f"small message {i} after a big one")  # noqa: B023
        after = _rss_kb(agent)
    finally:
        pub.loop_stop()
        pub.disconnect()
    too_large = messages().get("too_large", 0)
    print(f"\n[oversize] MQTT {protocol}: {SENDS} x {BIG >> 20} MB payloads: RSS {before // 1024} -> "
          f"{after // 1024} MB, too_large={too_large}")
    if protocol == "5":
        assert too_large == 0, "the broker sent a packet above our Maximum Packet Size"
    else:
        assert too_large == SENDS
    assert after - before <= RSS_SLACK_KB, f"RSS grew from {before} kB to {after} kB"
    assert agent.stop() == 0, agent.tail()
