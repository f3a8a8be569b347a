"""kill -9 the whole agent twice while 20,000 QoS 1 messages arrive: every value reaches the spool.

The agent runs as `python -m edgecollect run -c CONFIG` with a real mosquitto; the spool is read
afterwards (and, read-only, during the run) straight from its files with `edgecollect.spool.unframe`
and `edgecollect.batch.from_ipc`. Duplicates are expected (at-least-once) and reported.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections import Counter
from pathlib import Path

import pytest

from edgecollect.batch import batch_format, from_ipc
from edgecollect.spool import SUFFIX, unframe
from edgecollect.status import SOCKET_NAME, query
from tests.sources.mqtt.mqtt_support import Publisher, subscribe_once
from tests.support.agent import AgentProcess
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

TOTAL = 20_000


def agent_config(path: Path, state: Path, broker: Broker, client_id: str, topic: str,
                 flush_interval: str = "100ms", protocol: str = "3.1.1") -> None:
    path.write_text(
        f"""
[agent]
state_dir = "{state}"
log_level = "warning"
clock = "assume_synced"
shutdown_timeout = "10s"

[batch]
flush_interval = "{flush_interval}"
max_points = 5000

[sources.host]
enabled = false

[[sources.mqtt]]
name = "probe"
server = "{broker.url}"
client_id = "{client_id}"
protocol = "{protocol}"
qos = 1
reconnect_min = "50ms"
reconnect_max = "1s"
  [[sources.mqtt.subscribe]]
  topic = "{topic}"
  format = "plain"
""",
        encoding="utf-8",
    )


class SpoolReader:
    """Reads finished batch files (`*.ecb` appear by atomic rename) without touching the spool.

    A file is known by name, inode and size, not by name alone: offline compaction writes a merged
    batch under its oldest part's name (a new inode) before it deletes the other parts, so at any
    moment the files present hold every value, and a file that went away is forgotten.
    """

    def __init__(self, directory: Path, metric: str) -> None:
        self.directory = directory
        self.metric = metric
        self._seen: dict[tuple[str, int, int], list[int]] = {}

    def values(self) -> list[int]:
        if self.directory.is_dir():
            present: dict[tuple[str, int, int], list[int]] = {}
            for path in sorted(self.directory.glob(f"*{SUFFIX}")):
                try:
                    st = path.stat()
                    key = (path.name, st.st_ino, st.st_size)
                    if key in self._seen:
                        present[key] = self._seen[key]
                        continue
                    info, payload = unframe(path.read_bytes())
                except FileNotFoundError:
                    continue
                found: list[int] = []
                if info.signal == "metrics":
                    batch = from_ipc(payload)
                    assert batch_format(batch) == "metrics/1"
                    names = batch.column("name").to_pylist()
                    ints = batch.column("int_value").to_pylist()
                    found = [v for n, v in zip(names, ints, strict=True) if n == self.metric and v is not None]
                present[key] = found
            self._seen = present
        return [v for vs in self._seen.values() for v in vs]


def test_kill_9_twice_loses_no_qos1_message(running_broker: Broker, tmp_path: Path) -> None:
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    client_id = f"crash-{tag}"
    topic = f"crash{tag}/{{device}}/{{metric}}"
    config, state, log = tmp_path / "agent.toml", tmp_path / "state", tmp_path / "agent.log"
    agent_config(config, state, broker, client_id, topic)
    # The session exists before the agent's first start, so the broker queues from message one.
    subscribe_once(broker.host, broker.port, client_id, f"crash{tag}/+/+", 1)
    reader = SpoolReader(state / "spool", "v")
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    acked = [0]

    def publish_all() -> None:
        infos = []
        for i in range(TOTAL):
            infos.append(pub.publish(f"crash{tag}/meter/v", str(i)))
            if i % 500 == 499:
                pub.wait_published(infos[-500:])
                acked[0] = i + 1
        pub.wait_published(infos)
        acked[0] = TOTAL

    agent = AgentProcess(config, state, log).start()
    publisher = threading.Thread(target=publish_all, daemon=True)
    kills = 0
    try:
        publisher.start()
        for at in (TOTAL // 4, TOTAL // 2):
            # Kill once this agent instance is mid-stream: it has spooled a good number of values
            # itself and the publisher is still ahead of it.
            before = len(reader.values())
            wait_until(lambda at=at, before=before: acked[0] >= at and len(reader.values()) >= before + 1000,
                       180, f"{at} published and the agent spooling")
            agent.kill9()
            kills += 1
            agent.start()
        publisher.join(300)
        assert acked[0] == TOTAL, "publisher finished"
        expected = set(range(TOTAL))
        try:
            wait_until(lambda: set(reader.values()) >= expected, 240, f"all {TOTAL} values in the spool")
        finally:
            values = reader.values()
            counts = Counter(values)
            duplicates = sum(c - 1 for c in counts.values())
            missing = sorted(expected - set(values))
            print(f"\nkill -9 x{kills}: {TOTAL} published, {len(values)} spooled, {len(counts)} distinct, "
                  f"{duplicates} duplicates, {len(missing)} missing {missing[:10]}")
        assert agent.alive, "the restarted agent is running"
    finally:
        pub.close()
        if agent.stop() not in (0, -signal.SIGTERM, None):
            print(agent.tail())
    assert kills == 2


def test_sigterm_spools_and_acks_what_it_holds_so_a_restart_sees_no_redelivery(
    running_broker: Broker, tmp_path: Path,
) -> None:
    """systemd's SIGTERM while 300 messages sit unacked in the ring (the batcher would cut only in
    30 s): shutdown flushes them into the spool and the source acks them before it disconnects, so
    the next start gets nothing twice."""
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    client_id = f"term-{tag}"
    config, state, log = tmp_path / "agent.toml", tmp_path / "state", tmp_path / "agent.log"
    # MQTT 5: the window is our Receive Maximum (1000), not the broker's 3.1.1 in-flight limit.
    agent_config(config, state, broker, client_id, f"term{tag}/{{device}}/{{metric}}", "30s", "5")
    reader = SpoolReader(state / "spool", "v")
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    agent = AgentProcess(config, state, log).start()
    n = 300

    def counter(noun: str, label: str) -> int:
        """A counter of the running agent (this pid), read over its status socket; -1 if not up."""
        try:
            status = query(state / SOCKET_NAME)
        except (OSError, ValueError):
            return -1
        if agent.proc is None or status.get("pid") != agent.proc.pid:
            return -1
        return int(status["counters"].get(f"edgecollect.mqtt.{noun}{{source=mqtt.probe}}", {}).get(label, 0))

    def received() -> int:
        return counter("messages", "ok")

    try:
        wait_until(lambda: counter("connects", "subscribed") >= 1, 60, "agent up and subscribed")
        pub.wait_published([pub.publish(f"term{tag}/meter/v", str(i)) for i in range(n)])
        wait_until(lambda: received() >= n, 60, f"{n} messages in the agent")
        assert reader.values() == [], "nothing spooled yet: the acks are still owed"
        assert agent.stop() == 0, agent.tail(3000)
        assert sorted(reader.values()) == list(range(n)), "shutdown flushed the ring into the spool"
        agent.start()
        wait_until(lambda: counter("connects", "subscribed") >= 1, 60, "restarted agent subscribed")
        pub.wait_published([pub.publish(f"term{tag}/meter/v", "-1")])
        wait_until(lambda: received() >= 1, 60, "the sentinel in the restarted agent")
        assert agent.stop() == 0  # its shutdown flush spools the sentinel (and any redelivery)
        counts = Counter(reader.values())
        redelivered = sum(c - 1 for v, c in counts.items() if v >= 0)
        print(f"\nSIGTERM: {n} held unacked at the stop, {redelivered} delivered again after the restart")
        assert counts[-1] == 1 and set(counts) >= set(range(n)), "nothing lost"
        assert redelivered == 0, "shutdown must flush before the sources finish, so they can ack"
    finally:
        pub.close()
        agent.stop()
