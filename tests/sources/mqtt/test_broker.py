"""The MQTT source against a real mosquitto: acks follow durability, reconnects lose nothing.

`FileSink` stands in for batcher + spool with exactly their contract (drain, fsync, then
`ring.mark_durable(max_token)`), so these tests pin the source's side of invariant 3 on their own;
test_crash.py runs the whole agent.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecollect.buffer import Ring
from edgecollect.configtypes import Duration
from edgecollect.sources.base import SourceContext
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from tests.sources.mqtt.mqtt_support import FileSink, Publisher, make_context, read_values
from tests.support.broker import Broker
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


class Running:
    """An MqttSource on its own thread, as the runtime runs it."""

    def __init__(self, cfg: MqttConfig, ctx: SourceContext | None = None) -> None:
        self.ctx = ctx or make_context()
        self.source = MqttSource(cfg, self.ctx)
        self.thread = threading.Thread(target=self.source.run, name="mqtt-test", daemon=True)
        self.thread.start()

    def counter(self, noun: str) -> dict[str, int]:
        found = self.ctx.telemetry.find(f"edgecollect.mqtt.{noun}", source=self.ctx.name)
        return found.snapshot() if found is not None else {}

    def connected(self) -> bool:
        """Connected and every subscription granted (publishing earlier could precede them)."""
        subscribed = self.counter("connects").get("subscribed", 0) >= len(self.source._rules)
        return subscribed and self.source._connected

    def stop(self) -> None:
        self.ctx.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "run() did not return after stop"


def config(broker: Broker, client_id: str, topic: str, fmt: str = "plain", **kw: object) -> MqttConfig:
    return MqttConfig(
        server=broker.url, client_id=client_id, qos=1,
        reconnect_min=Duration(0.05), reconnect_max=Duration(0.5),
        subscribe=(SubscribeConfig(topic=topic, format=fmt),),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_acks_only_after_the_batch_is_durable(running_broker: Broker, tmp_path: Path, protocol: str) -> None:
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    cid = f"ack-{tag}"
    cfg = config(broker, cid, f"ack{tag}/{{device}}/{{metric}}", protocol=protocol)
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    try:
        # 1. Received but never durable: nothing may be acked.
        first = Running(cfg)
        wait_until(first.connected, 15, "source connected")
        infos = [pub.publish(f"ack{tag}/d1/v", str(i)) for i in range(50)]
        pub.wait_published(infos)
        wait_until(lambda: len(first.ctx.ring) == 50, 20, "50 points in the ring")
        assert first.source.pending() == 50
        assert first.counter("acks") == {}
        first.stop()  # no durability ever came: the 50 messages stay the broker's

        # 2. A new process-equivalent with the same client id gets all 50 again and acks them once durable.
        sink_path = tmp_path / "sink.txt"
        second = Running(cfg)
        sink = FileSink(second.ctx, sink_path).start()
        wait_until(lambda: sorted(read_values(sink_path)) == [float(i) for i in range(50)], 20,
                   "the 50 unacked messages redelivered into the sink")
        wait_until(lambda: second.counter("acks").get("durable", 0) >= 50, 20, "all acked after durability")
        assert second.counter("acks") == {"durable": 50} and second.source.pending() == 0
        second.stop()
        sink.close()

        # 3. Acked means gone: a third session sees only what is new.
        third = Running(cfg)
        wait_until(third.connected, 15, "third session connected")
        pub.wait_published([pub.publish(f"ack{tag}/d1/v", "999")])
        wait_until(lambda: len(third.ctx.ring) >= 1, 20, "the new message")
        drained = third.ctx.ring.drain()
        assert list(drained.ints) == [999] and len(drained) == 1
        third.ctx.ring.mark_durable(drained.max_token)
        third.stop()
    finally:
        pub.close()


def test_broker_restart_mid_publish_loses_no_qos1_message(running_broker: Broker, tmp_path: Path) -> None:
    """The broker restarts (SIGTERM, persistence on) while a publisher streams 3,000 QoS 1 messages.

    The source must reconnect, resubscribe and store every value. An independent paho subscriber
    (persistent session, automatic acks) listens too, as a check on the broker fixture itself: if
    the broker lost messages (e.g. persistence not writable), the reference shows it.
    """
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    total = 3000
    topic = f"rs{tag}/dev/v"
    sink_path = tmp_path / "sink.txt"
    src = Running(config(broker, f"restart-{tag}", f"rs{tag}/{{device}}/{{metric}}"))
    sink = FileSink(src.ctx, sink_path).start()
    reference = Reference(broker, f"ref-{tag}", f"rs{tag}/#")
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    try:
        wait_until(src.connected, 15, "source connected")
        wait_until(reference.subscribed.is_set, 15, "reference subscribed")
        infos = []
        for i in range(total):
            infos.append((i, pub.publish(topic, str(i))))
            if i == total // 3:
                broker.restart()  # mid-stream: hundreds in flight between publisher, broker and source
        # paho refuses (rc != 0) what is published while it is disconnected: send those again.
        for i, info in infos:
            if info.rc != 0:
                pub.publish_acked(topic, str(i))
        pub.wait_published([info for _, info in infos if info.rc == 0], 180)
        expected = {float(i) for i in range(total)}
        try:
            wait_until(lambda: set(read_values(sink_path)) >= expected, 60, f"all {total} values in the sink")
        finally:
            values = read_values(sink_path)
            missing = sorted(expected - set(values))
            print(f"\nbroker restart: {total} published; source stored {len(values)} ({len(set(values))} "
                  f"distinct, {len(values) - len(set(values))} duplicates), missing {len(missing)} "
                  f"{missing[:10]}; reference got {len(set(reference.values))} distinct; "
                  f"connects {src.counter('connects')}, acks {src.counter('acks')}")
        assert src.counter("connects").get("ok", 0) >= 2, "the source reconnected"
        assert src.counter("connects").get("subscribed", 0) >= 2, "and resubscribed"
        assert broker.starts >= 2
        assert src.thread.is_alive()
        wait_until(lambda: set(reference.values) >= expected, 30, "the reference has everything too")
    finally:
        pub.close()
        reference.close()
        src.stop()
        sink.close()


class Reference:
    """A plain paho subscriber (persistent session, automatic acks) to compare against."""

    def __init__(self, broker: Broker, client_id: str, topic: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.values: list[float] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, 1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.values.append(float(m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


MALFORMED_KINDS = ("not_utf8", "deep", "huge_int", "inf", "nan", "blob", "wrong_type", "not_json", "empty")


def malformed(i: int, tag: str) -> tuple[str, bytes]:
    """The i-th malformed message: a topic routed to one format and a payload that breaks it."""
    kind = MALFORMED_KINDS[i % len(MALFORMED_KINDS)]
    fmt = ("tasmota", "json", "zigbee2mqtt", "plain", "shelly", "influx")[i % 6]
    topics = {
        "tasmota": f"mf{tag}/tasmota/dev{i % 7}/SENSOR",
        "json": f"mf{tag}/json/dev{i % 7}",
        "zigbee2mqtt": f"mf{tag}/z2m/dev{i % 7}",
        "plain": f"mf{tag}/plain/dev{i % 7}/v",
        "shelly": f"mf{tag}/shelly/dev{i % 7}/events/rpc",
        "influx": f"mf{tag}/influx/dev{i % 7}",
    }
    payloads = {
        "not_utf8": b"\xff\xfe\x00{\"a\":1}" + bytes([0x80 + i % 64]),
        "deep": b"[" * 50_000 + b"]" * 50_000 if i % 2 else b'{"a":' * 5000 + b"1" + b"}" * 5000,
        "huge_int": b'{"v":' + b"9" * 5000 + b"}" if i % 2 else b'{"ENERGY":{"Total":1' + b"0" * 30 + b"}}",
        "inf": b'{"v":1e999,"SENSOR":{"Temperature":-1e400}}' if i % 2 else b"1e999",
        "nan": b'{"v":NaN,"x":{"Temperature":NaN},"params":{"switch:0":{"apower":NaN}}}',
        "blob": b"\x00" * (1 << 20),
        "wrong_type": b'[["ENERGY"],{"Total":"x"}]' if i % 2 else b'"NotifyStatus"',
        "not_json": b'{"Time":"2020-01-01T00:00:00","X":{"Temperature":' if i % 2 else b"m v=\x01\x02 junk",
        "empty": b"",
    }
    return topics[fmt], payloads[kind]


def test_ten_thousand_malformed_payloads_are_counted_and_acked(running_broker: Broker) -> None:
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    subs = (
        SubscribeConfig(topic=f"mf{tag}/tasmota/{{device}}/+", format="tasmota"),
        SubscribeConfig(topic=f"mf{tag}/json/{{device}}", format="json"),
        SubscribeConfig(topic=f"mf{tag}/z2m/{{device...}}", format="zigbee2mqtt"),
        SubscribeConfig(topic=f"mf{tag}/plain/{{device}}/{{metric}}", format="plain"),
        SubscribeConfig(topic=f"mf{tag}/shelly/{{device}}/#", format="shelly"),
        SubscribeConfig(topic=f"mf{tag}/influx/{{device}}", format="influx"),
    )
    cfg = MqttConfig(server=broker.url, client_id=f"malformed-{tag}", qos=1, subscribe=subs,
                     reconnect_min=Duration(0.05), reconnect_max=Duration(0.5))
    src = Running(cfg)
    durable = threading.Event()
    sink_stop = threading.Event()

    def drain_loop() -> None:  # malformed messages mostly yield nothing, but tokens still need durability
        while not sink_stop.wait(0.02):
            drained = src.ctx.ring.drain()
            if drained.max_token:
                src.ctx.ring.mark_durable(drained.max_token)
                durable.set()

    drainer = threading.Thread(target=drain_loop, daemon=True)
    drainer.start()
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    try:
        wait_until(src.connected, 15, "source connected")
        n = 10_000
        infos = []
        for i in range(n):
            topic, payload = malformed(i, tag)
            # Only a few 1 MB blobs: they prove the cap, and loopback time is better spent elsewhere.
            if payload[:1] == b"\x00" and i % 90 >= 9:
                payload = b"\x00" * 300_000
            infos.append(pub.publish(topic, payload))
        pub.wait_published(infos, 240)
        pub.wait_published([pub.publish(f"mf{tag}/plain/sentinel/v", "42")])
        outcomes = src.counter
        wait_until(lambda: sum(outcomes("messages").values()) >= n + 1, 240, "every message processed")
        wait_until(lambda: sum(outcomes("acks").values()) >= n + 1, 60, "every message acked")
        counts = Counter(outcomes("messages"))
        print(f"\nmalformed outcomes: {dict(counts)}; acks {outcomes('acks')}")
        assert src.thread.is_alive(), "the agent stays up"
        assert sum(counts.values()) == n + 1
        for reason in ("not_utf8", "too_deep", "number_range", "not_finite", "too_large", "wrong_type",
                       "not_json", "empty"):
            assert counts[reason] > 0, f"no {reason!r} rejects counted"
        assert counts["parser_error"] == 0, "a parser raised"
        assert counts["ok"] == 1  # the sentinel; nothing malformed passes as a clean reading
        acks = outcomes("acks")
        assert acks.get("immediate", 0) + acks.get("durable", 0) == n + 1 and src.source.pending() == 0
    finally:
        pub.close()
        src.stop()
        sink_stop.set()
        drainer.join(5)


class FlushingRing(Ring):
    """A Ring with the `request_flush()` hook the source calls when acks are owed (see client.py)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.flush_requests = 0
        self.on_request: Callable[[], None] = lambda: None

    def request_flush(self) -> None:
        self.flush_requests += 1
        self.on_request()


class SourceIntoFileSink:
    """An MqttSource on a FlushingRing, a FileSink that cuts every `tick_s` or when asked, and a
    publisher: the source's side of the batcher contract, with its early-cut requests counted."""

    def __init__(self, broker: Broker, path: Path, name: str, tick_s: float) -> None:
        tag = uuid.uuid4().hex[:8]
        self.topic = f"{name}{tag}/d/v"
        ctx = make_context()
        telemetry = ctx.telemetry
        self.ring = FlushingRing(ctx.name, 100_000, "drop_oldest", telemetry.counter("buffer", "dropped", "policy"),
                                 telemetry.counter("buffer", "logs_dropped", "policy"))
        ctx.ring = self.ring
        self.src = Running(config(broker, f"{name}-{tag}", f"{name}{tag}/{{device}}/{{metric}}"), ctx)
        self.sink_path = path
        self.sink = FileSink(ctx, path, interval_s=tick_s)
        self.ring.on_request = self.sink.wake
        self.sink.start()
        self.pub = Publisher(broker.host, broker.port, f"pub-{tag}")
        wait_until(self.src.connected, 15, "source connected")

    def values(self) -> list[float]:
        return read_values(self.sink_path)

    def close(self) -> None:
        self.pub.close()
        self.src.stop()
        self.sink.close()


def test_owed_acks_ask_for_an_early_flush_so_a_small_broker_window_keeps_flowing(
    running_broker: Broker, tmp_path: Path,
) -> None:
    """MQTT 3.1.1 leaves the in-flight window to the broker (mosquitto: max_inflight_messages, 20 by
    default). With a batcher that cuts only every 30 s, nothing would be durable (and acked) for 30 s
    and the stream would stall behind the window; because the source asks for a flush when it owes
    acks and the stream has stalled, 1,000 messages are durable in a few early batches."""
    run = SourceIntoFileSink(running_broker, tmp_path / "sink.txt", "fl", tick_s=30.0)
    try:
        total = 1000
        run.pub.wait_published([run.pub.publish(run.topic, str(i)) for i in range(total)])
        wait_until(lambda: len(run.values()) >= total, 25, "all values durable long before 30 s")
        print(f"\nflush requests {run.src.counter('flush_requests')}, sink batches {run.sink.batches}, "
              f"acks {run.src.counter('acks')}")
        assert run.ring.flush_requests >= 1  # without them nothing would be durable before 30 s
        assert sorted(run.values()) == [float(i) for i in range(total)]
    finally:
        run.close()


def test_a_slow_qos1_stream_waits_for_the_tick_instead_of_a_batch_per_message(
    running_broker: Broker, tmp_path: Path,
) -> None:
    """A sensor every 0.2 s never fills the broker's window, so its acks can wait for the batcher's
    tick: asking for a cut whenever the stream paused made a batch (and an fsync) of every message."""
    run = SourceIntoFileSink(running_broker, tmp_path / "sink.txt", "sl", tick_s=2.0)
    total = 15
    try:
        for i in range(total):
            run.pub.wait_published([run.pub.publish(run.topic, str(i))])
            time.sleep(0.2)
        wait_until(lambda: len(run.values()) >= total, 20, "every value durable at a tick")
        wait_until(lambda: run.src.counter("acks").get("durable", 0) >= total, 10, "every message acked")
        requests = run.src.counter("flush_requests")
        print(f"\nflush requests {requests}, sink batches {run.sink.batches}")
        assert run.ring.flush_requests <= 2, f"early cuts for a slow stream: {requests}"
        assert sorted(run.values()) == [float(i) for i in range(total)]
    finally:
        run.close()


def test_qos2_subscription_is_acked_after_durability(running_broker: Broker, tmp_path: Path) -> None:
    """QoS 2 works end to end (PUBCOMP once durable); see the package docstring for why it gives no
    more than QoS 1 across a crash."""
    broker = running_broker
    tag = uuid.uuid4().hex[:8]
    cfg = MqttConfig(
        server=broker.url, client_id=f"q2-{tag}", qos=2, reconnect_min=Duration(0.05), reconnect_max=Duration(0.5),
        subscribe=(SubscribeConfig(topic=f"q2{tag}/{{device}}/{{metric}}", format="plain"),),
    )
    src = Running(cfg)
    sink_path = tmp_path / "sink.txt"
    sink = FileSink(src.ctx, sink_path).start()
    pub = Publisher(broker.host, broker.port, f"pub-{tag}")
    try:
        wait_until(src.connected, 15, "source connected")
        infos = [pub.client.publish(f"q2{tag}/d/v", str(i), qos=2) for i in range(100)]
        pub.wait_published(infos)
        wait_until(lambda: src.counter("acks").get("durable", 0) >= 100, 30, "100 QoS 2 messages completed")
        assert sorted(read_values(sink_path)) == [float(i) for i in range(100)]
    finally:
        pub.close()
        src.stop()
        sink.close()
