"""Helpers shared by the MQTT tests: a real SourceContext, a stand-in batcher, golden data and its
comparison, a real paho publisher."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecollect.buffer import FLAG_INT, Ring
from edgecollect.clock import Clock
from edgecollect.model import Point, SeriesRegistry
from edgecollect.sources.base import SourceContext
from edgecollect.telemetry import Telemetry
from tests.support.wait import wait_until

DATA = Path(__file__).parent / "data"


def make_context(name: str = "mqtt.0", capacity: int = 100_000) -> SourceContext:
    telemetry = Telemetry()
    ring = Ring(
        name, capacity, "drop_oldest",
        telemetry.counter("buffer", "dropped", "policy"),
        telemetry.counter("buffer", "logs_dropped", "policy"),
        max_log_bytes=64 << 20,
    )
    return SourceContext(
        name=name, kind="mqtt", ring=ring, stop=threading.Event(), series=SeriesRegistry(),
        telemetry=telemetry, clock=Clock(),
    )


class FileSink:
    """What the batcher and spool will do, reduced to its contract: drain the ring, append the
    drained values to a file, fsync, then `ring.mark_durable(max_token)`. Runs on its own thread.

    `on_batch(values)` sees each durable batch (ints and floats as written)."""

    def __init__(self, ctx: SourceContext, path: Path, interval_s: float = 0.02,
                 on_batch: Callable[[list[float]], None] | None = None) -> None:
        self.ctx = ctx
        self.path = path
        self.interval_s = interval_s
        self.on_batch = on_batch
        self.stop = threading.Event()
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="file-sink", daemon=True)
        self.batches = 0

    def wake(self) -> None:
        """Cut now (what the batcher does when a ring asks for an early flush)."""
        self._wake.set()

    def start(self) -> FileSink:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self._wake.set()
        self.thread.join(5)
        self.flush()

    def _run(self) -> None:
        while not self.stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        drained = self.ctx.ring.drain()
        values: list[float] = []
        for i in range(len(drained)):
            values.append(drained.ints[i] if drained.flags[i] & FLAG_INT else drained.floats[i])
        if values:
            with open(self.path, "a", encoding="ascii") as fh:
                fh.write("".join(f"{v!r}\n" for v in values))
                fh.flush()
                os.fsync(fh.fileno())
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(values)
        if drained.max_token:
            self.ctx.ring.mark_durable(drained.max_token)


def payload_of(message: dict[str, Any]) -> bytes:
    """A golden message's payload as bytes (written as JSON, hex or text in the data files)."""
    if "payload_json" in message:
        return json.dumps(message["payload_json"], separators=(",", ":")).encode()
    if "payload_hex" in message:
        return bytes.fromhex(message["payload_hex"])
    return str(message["payload"]).encode("utf-8")


def point_dict(point: Point) -> dict[str, Any]:
    return {
        "name": point.series.name,
        "value": point.value,
        "unit": point.series.unit,
        "kind": point.series.kind,
        "attributes": dict(point.series.attributes),
        "time_ns": point.time_ns,
    }


def same_value(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return False  # values are numbers; a bool would be a parser slip
    if isinstance(expected, int):
        return isinstance(actual, int) and actual == expected
    return isinstance(actual, float) and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


def same_time(expected: int | None, actual: int | None) -> bool:
    if expected is None or actual is None:
        return expected is actual
    return abs(expected - actual) <= 1000  # float seconds (Shelly ts) round to within a microsecond


def match_points(expected: list[dict[str, Any]], actual: list[Point]) -> list[str]:
    """Differences between expected point dicts and actual points, order-insensitive."""
    problems: list[str] = []
    remaining = [point_dict(p) for p in actual]
    for want in expected:
        want = {"kind": "gauge", "time_ns": None, "attributes": {}, **want}
        for i, got in enumerate(remaining):
            if (
                got["name"] == want["name"]
                and got["unit"] == want["unit"]
                and got["kind"] == want["kind"]
                and got["attributes"] == want["attributes"]
                and same_value(want["value"], got["value"])
                and same_time(want["time_ns"], got["time_ns"])
            ):
                del remaining[i]
                break
        else:
            problems.append(f"missing {want}")
    problems.extend(f"unexpected {got}" for got in remaining)
    return problems


class Publisher:
    """A real paho publisher with a persistent session that reconnects and resends on its own."""

    def __init__(self, host: str, port: int, client_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.connected = threading.Event()
        self.client.on_connect = lambda *a: self.connected.set()
        self.client.on_disconnect = lambda *a: self.connected.clear()
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()
        wait_until(self.connected.is_set, 15, "publisher connected")

    def publish(self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False) -> Any:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def publish_acked(self, topic: str, payload: bytes | str, timeout_s: float = 120) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK, republishing if paho refused it while
        disconnected (a message accepted while connected is resent by paho itself after a reconnect)."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            wait_until(self.connected.is_set, max(1.0, deadline - time.monotonic()), "publisher reconnected")
            info = self.client.publish(topic, payload, qos=1)
            if info.rc != 0:
                time.sleep(0.05)
                continue
            wait_until(info.is_published, max(1.0, deadline - time.monotonic()), f"PUBACK for {topic}")
            return
        raise AssertionError(f"could not publish to {topic} within {timeout_s} s")

    def wait_published(self, infos: list[Any], timeout_s: float = 120) -> None:
        wait_until(lambda: all(i.is_published() for i in infos), timeout_s, f"{len(infos)} publishes acked")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def subscribe_once(host: str, port: int, client_id: str, topic: str, qos: int = 1) -> None:
    """Create a persistent session with a subscription, so the broker queues for it from now on."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=False)
    client.on_subscribe = lambda *a: done.set()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos)
    client.connect(host, port)
    client.loop_start()
    wait_until(done.is_set, 15, f"subscription {topic} for {client_id}")
    client.disconnect()
    client.loop_stop()


def read_values(path: Path) -> list[float]:
    """Values a FileSink wrote; a line torn by kill -9 (never marked durable) is skipped."""
    if not path.exists():
        return []
    out: list[float] = []
    for line in path.read_text(encoding="ascii", errors="replace").splitlines():
        try:
            out.append(float(line))
        except ValueError:
            continue
    return out
