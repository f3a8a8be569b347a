"""A clean stop acks what is durable and the broker gets those acks, even with input still unread.

The race this pins: the source writes its last PUBACKs and DISCONNECT, paho closes the socket, and
bytes the broker sent meanwhile (a SUBACK, a PINGRESP, the next PUBLISH) are still unread in our
kernel. Linux then resets the connection instead of closing it, and the broker's kernel drops the
PUBACKs the broker had not read yet: durable, acked messages come again at the next start. Here the
broker is frozen (SIGSTOP) while the source acks and disconnects, so every ack is still unread at
the broker when the socket closes: without the graceful close all of them are lost, every time.
"""

from __future__ import annotations

import array
import fcntl
import os
import signal
import termios
import threading
import uuid
from pathlib import Path

import pytest

from edgecollect.configtypes import Duration
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from tests.sources.mqtt.mqtt_support import Publisher, make_context
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration
N = 20


def unread_bytes(source_client: object) -> int:
    sock = source_client.socket()  # type: ignore[attr-defined]
    if sock is None:
        return 0
    count = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, count)
    return count[0]


def process_state(pid: int) -> str:
    """The one-letter state of /proc/PID/stat (T: stopped by a signal)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def test_acks_sent_just_before_disconnect_reach_the_broker_with_input_unread(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # our own: this test freezes it
    broker.start()
    assert broker.proc is not None
    pid = broker.proc.pid
    tag = uuid.uuid4().hex[:8]
    cfg = MqttConfig(
        server=broker.url, client_id=f"bye-{tag}", qos=1, protocol="5",
        reconnect_min=Duration(0.05), reconnect_max=Duration(0.5),
        subscribe=(SubscribeConfig(topic=f"bye{tag}/{{device}}/{{metric}}", format="plain"),),
    )
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    frozen = False
    try:
        # The source's own steps, driven from this thread so that nothing reads its socket for it.
        ctx = make_context()
        source = MqttSource(cfg, ctx)
        client = source._build()
        source._connect(client)
        subscribed = ctx.telemetry.find("edgecollect.mqtt.connects", source=ctx.name)

        def pumped(done: bool) -> bool:
            client.loop(timeout=0.05)
            return done

        wait_until(lambda: pumped(subscribed is not None and subscribed.snapshot().get("subscribed", 0) >= 1),
                   15, "subscribed")
        pub.wait_published([pub.publish(f"bye{tag}/d1/v", str(i)) for i in range(N)])
        wait_until(lambda: pumped(source.pending() == N), 20, f"{N} QoS 1 messages pending")

        # One more message arrives as the source stops: it sits unread in the source's socket.
        pub.wait_published([pub.publish(f"bye{tag}/d1/v", "500", qos=0)])
        wait_until(lambda: unread_bytes(client) > 0, 20, "a message unread in the source's socket")

        drained = ctx.ring.drain()
        ctx.ring.mark_durable(drained.max_token)  # what the shutdown flush does
        os.kill(pid, signal.SIGSTOP)  # the broker reads nothing until we have closed
        frozen = True
        wait_until(lambda: process_state(pid) == "T", 15, "the broker stopped")  # kill is async
        source._ack_durable(client)  # the last iteration of the source's loop ...
        assert source.pending() == 0
        source._close(client)  # ... and its disconnect at stop
        os.kill(pid, signal.SIGCONT)
        frozen = False

        # Acked means gone: the same session, started again, sees only what is new.
        later = make_context()
        thread = threading.Thread(target=MqttSource(cfg, later).run, name="mqtt-after", daemon=True)
        thread.start()
        connects = later.telemetry.find("edgecollect.mqtt.connects", source=later.name)
        wait_until(lambda: connects is not None and connects.snapshot().get("subscribed", 0) >= 1, 15,
                   "started again")
        pub.wait_published([pub.publish(f"bye{tag}/d1/v", "999")])
        seen: list[int] = []

        def new_message_seen() -> bool:
            seen.extend(later.ring.drain().ints)
            return 999 in seen

        wait_until(new_message_seen, 20, "the new message")
        assert seen == [999], f"durable, acked messages came again: {seen}"
        later.stop.set()
        thread.join(15)
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
        pub.close()
        broker.stop()
