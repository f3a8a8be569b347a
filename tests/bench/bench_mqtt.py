"""MQTT source throughput on one core: Tasmota-like JSON at QoS 0 and QoS 1, and CPU µs per message.

Run: python -m tests.bench.bench_mqtt [--messages N] [--floor SECONDS]

1. parse: `MqttSource.handle` + `ctx.emit` in a loop (no network): CPU µs per message.
2. broker: a real mosquitto on loopback. N messages are queued for the source's persistent session
   while it is offline, then the source (this process, pinned to one CPU) drains the queue. The
   publisher is out of the measured window, so the figure is the consumer's sustained rate.
   QoS 1 acks follow durability: a stand-in batcher thread drains the ring every 20 ms and marks it
   durable (no fsync here: the spool's cost is measured by its own benchmark).
Prints messages/s (wall), CPU µs per message (process time / messages) and the machine.

`--floor SECONDS` instead measures what paho alone costs at profile C's load (bench_footprint: JSON
QoS 1 at 2,000 msg/s from a paced publisher, through mosquitto) with an on_message that only
records the message id for its ack: once driven by paho's own `loop()`, once by the source's
`netio` (chunked reads, acks written together). No parsing, no ring, no batcher: the per-message
CPU the source cannot go below without replacing paho's packet handling.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgecollect.buffer import Ring
from edgecollect.clock import Clock
from edgecollect.configtypes import Duration
from edgecollect.model import SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from edgecollect.telemetry import Telemetry
from tests.support.broker import Broker

PAYLOAD = (
    '{{"Time":"2023-05-19T20:52:{s:02d}","ENERGY":{{"TotalStartTime":"2022-03-20T15:20:48",'
    '"Total":{t:.3f},"Yesterday":1.495,"Today":0.537,"Period":0,"Power":{p},"ApparentPower":92,'
    '"ReactivePower":73,"Factor":0.61,"Voltage":234,"Current":0.392}}}}'
)
DEVICES = 50


def payload(i: int) -> bytes:
    return PAYLOAD.format(s=i % 60, t=514.153 + i / 1000, p=50 + i % 13).encode()


def context() -> SourceContext:
    telemetry = Telemetry()
    ring = Ring("mqtt.0", 200_000, "drop_oldest", telemetry.counter("buffer", "dropped", "policy"),
                telemetry.counter("buffer", "logs_dropped", "policy"))
    return SourceContext("mqtt.0", "mqtt", ring, threading.Event(), SeriesRegistry(), telemetry, Clock())


def bench_parse(n: int) -> None:
    ctx = context()
    cfg = MqttConfig(subscribe=(SubscribeConfig(topic="tele/{device}/+", format="tasmota"),))
    source = MqttSource(cfg, ctx)
    messages = [(f"tele/plug{i % DEVICES}/SENSOR", payload(i)) for i in range(n)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    points = 0
    for i, (topic, body) in enumerate(messages):
        parsed = source.handle(topic, body)
        points += ctx.emit(parsed.points, token=i + 1)
        if i % 10_000 == 9_999:
            ctx.ring.drain()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(f"parse+emit  tasmota  {n} msgs  {points / n:.0f} points/msg  {n / wall:,.0f} msg/s  "
          f"{cpu / n * 1e6:.1f} CPU µs/msg")


def start_broker(directory: Path) -> Broker:
    """Nothing persisted or queued: each run measures the path from publish to the source."""
    broker = Broker(directory, options={
        "persistence": "false", "max_queued_messages": "0", "queue_qos0_messages": "true",
        "max_inflight_messages": "1000",
    })
    broker.start()
    return broker


def preload(port: int, client_id: str, qos: int, n: int, protocol: str) -> None:
    """Create the session and queue n messages for it while it is offline."""
    v5 = protocol == "5"
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                      protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, clean_session=None if v5 else False)
    if v5:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        sub.connect("127.0.0.1", port, clean_start=False, properties=props)
    else:
        sub.connect("127.0.0.1", port)
    done = threading.Event()
    sub.on_subscribe = lambda *a: done.set()
    sub.subscribe("tele/+/SENSOR", qos)
    sub.loop_start()
    done.wait(10)
    sub.disconnect()
    sub.loop_stop()
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"{client_id}-pub")
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    infos = [pub.publish(f"tele/plug{i % DEVICES}/SENSOR", payload(i), qos=1) for i in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    pub.disconnect()
    pub.loop_stop()


def bench_broker(port: int, qos: int, n: int, protocol: str) -> None:
    client_id = f"bench-q{qos}-v{protocol}-{os.getpid()}"
    preload(port, client_id, qos, n, protocol)
    ctx = context()
    cfg = MqttConfig(
        server=f"mqtt://127.0.0.1:{port}", client_id=client_id, qos=qos, protocol=protocol,  # type: ignore[arg-type]
        max_unacked=1000, reconnect_min=Duration(0.05),
        subscribe=(SubscribeConfig(topic="tele/{device}/+", format="tasmota"),),
    )
    source = MqttSource(cfg, ctx)
    messages = ctx.telemetry.counter("mqtt", "messages", "outcome", base={"source": "mqtt.0"})
    stop = threading.Event()

    def batcher() -> None:
        while not stop.wait(0.02):
            drained = ctx.ring.drain()
            if drained.max_token:
                ctx.ring.mark_durable(drained.max_token)

    drainer = threading.Thread(target=batcher, daemon=True)
    runner = threading.Thread(target=source.run, daemon=True)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    drainer.start()
    runner.start()
    while messages.total() < n:
        time.sleep(0.005)
    while qos and source.pending():
        time.sleep(0.005)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    ctx.stop.set()
    stop.set()
    runner.join(10)
    print(f"broker      tasmota  QoS {qos} MQTT {protocol:5s} {n} msgs  {n / wall:,.0f} msg/s  "
          f"{cpu / n * 1e6:.1f} CPU µs/msg  (outcomes {messages.snapshot()})")


def floor_run(host: str, port: int, driver: str, seconds: float) -> tuple[float, float]:
    """(msg/s, CPU µs/msg) of paho alone, driven by `driver` ("paho loop()" or "netio")."""
    from edgecollect.sources.mqtt import netio

    mids: list[int] = []
    cls = netio.ChunkedClient if driver == "netio" else mqtt.Client
    client = cls(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"floor-{driver[:5]}",
                 clean_session=True, manual_ack=True)
    client.on_message = lambda c, u, msg: mids.append(msg.mid)
    client.connect(host, port)
    client.subscribe("floor/+", 1)
    taken = 0
    stop = threading.Event()

    def serve() -> None:
        nonlocal taken
        while not stop.is_set():
            client.loop(timeout=0.5)
            for mid in mids:
                client.ack(mid, 1)
            taken += len(mids)
            mids.clear()
            if driver == "netio":
                netio.flush_writes(client)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    time.sleep(5)  # warm-up
    n0, cpu0, wall0 = taken, time.process_time(), time.perf_counter()
    time.sleep(seconds)
    n, cpu, wall = taken - n0, time.process_time() - cpu0, time.perf_counter() - wall0
    stop.set()
    thread.join(10)
    client.disconnect()
    return n / wall, cpu / max(n, 1) * 1e6


def bench_floor(seconds: float, rate: int = 2_000) -> None:
    """paho receiving `rate` msg/s QoS 1 with an empty on_message: paho loop() vs netio."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))  # the footprint benchmark's broker settings
        broker.start()
        pub = subprocess.Popen([sys.executable, "-m", "tests.bench.bench_suite", "publish", broker.host,
                                str(broker.port), "floor", str(rate), str(2 * (seconds + 10) + 10)])
        try:
            for driver in ("paho loop()", "netio"):
                per_s, us = floor_run(broker.host, broker.port, driver, seconds)
                print(f"floor       paho alone, {driver:11s} QoS 1 {per_s:,.0f} msg/s  {us:.1f} CPU µs/msg  "
                      "(empty on_message, acks per loop turn)")
        finally:
            pub.terminate()
            pub.wait(10)
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--floor", type=float, default=0.0, metavar="SECONDS",
                        help="measure paho alone at 2,000 msg/s for SECONDS per driver instead")
    args = parser.parse_args()
    if args.floor:
        print(f"machine: {platform.machine()} {platform.processor() or '?'}, {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        bench_floor(args.floor)
        return
    tmp = tempfile.TemporaryDirectory()
    broker = start_broker(Path(tmp.name))  # before pinning: the broker must not share our core
    port = broker.port
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core for the agent side
    print(f"machine: {platform.machine()} {platform.processor() or '?'}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}; agent side pinned to one CPU")
    try:
        bench_parse(args.messages)
        bench_broker(port, 0, args.messages, "3.1.1")
        bench_broker(port, 1, args.messages, "3.1.1")
        bench_broker(port, 1, args.messages, "5")
    finally:
        broker.stop()
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
