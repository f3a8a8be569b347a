"""A cumulative series never starts after its first point (OTLP: start_time <= time).

Golden payloads go through `MqttSource.handle` and then the source context, as on the broker
session; the series registry then holds the start time every exported point of the series carries.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from edgecollect.sources.base import SourceContext
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from tests.sources.mqtt.mqtt_support import make_context

# Tasmota docs (Sonoff POW R2, SENSOR telemetry): Time and TotalStartTime on the device's clock.
TASMOTA_POW = {
    "Time": "2019-11-03T19:34:28",
    "ENERGY": {"TotalStartTime": "2019-10-30T19:54:52", "Total": 0.109, "Yesterday": 0.016, "Today": 0.022,
               "Period": 0, "Power": 0, "ApparentPower": 0, "ReactivePower": 0, "Factor": 0.00,
               "Voltage": 0, "Current": 0.000},
}
METER_AGE_NS = int((datetime(2019, 11, 3, 19, 34, 28) - datetime(2019, 10, 30, 19, 54, 52)).total_seconds()) * 10**9


def _emit(source: MqttSource, ctx: SourceContext, topic: str, payload: bytes, received_ns: int) -> None:
    parsed = source.handle(topic, payload, received_ns=received_ns)
    assert parsed.outcome == "ok", parsed
    assert ctx.emit(parsed.points) == len(parsed.points)


def _entries(ctx: SourceContext, name: str) -> list[tuple[int, int]]:
    """(start, first point time) of every series called `name`, from the registry and the ring."""
    drained = ctx.ring.drain()
    first: dict[int, int] = {}
    for i in range(len(drained)):
        first.setdefault(drained.series_ids[i], drained.times_ns[i])
    return [(ctx.series.start_time_ns(sid), t) for sid, t in first.items() if ctx.series.series(sid).name == name]


def test_json_payload_time_is_the_start_of_a_cumulative_series() -> None:
    ctx = make_context()
    sub = SubscribeConfig(topic="meters/{device}", format="json", time_key="ts", types={"energy": "cumulative"})
    source = MqttSource(MqttConfig(subscribe=(sub,)), ctx)
    point_ns = 1_800_000_000 * 10**9  # the reading's own time, earlier than its arrival
    payload = json.dumps({"ts": point_ns // 10**6, "energy": 12.5}).encode()
    _emit(source, ctx, "meters/m1", payload, received_ns=point_ns + 3_000_000)
    assert _entries(ctx, "energy") == [(point_ns, point_ns)]


def test_receipt_stamped_cumulative_starts_at_its_first_point() -> None:
    ctx = make_context()
    sub = SubscribeConfig(topic="meters/{device}", format="json", types={"energy": "cumulative"})
    source = MqttSource(MqttConfig(subscribe=(sub,)), ctx)
    _emit(source, ctx, "meters/m1", b'{"energy": 3}', received_ns=0)
    [(start, first)] = _entries(ctx, "energy")
    assert start <= first


def test_tasmota_total_starts_at_total_start_time_on_the_receipt_clock() -> None:
    ctx = make_context()
    source = MqttSource(MqttConfig(subscribe=(SubscribeConfig(topic="tele/{device}/+", format="tasmota"),)), ctx)
    received = time.time_ns()
    _emit(source, ctx, "tele/pow1/SENSOR", json.dumps(TASMOTA_POW).encode(), received_ns=received)
    [(start, first)] = _entries(ctx, "hw.energy")
    # Time has no zone, so the reading is stamped on receipt: the meter's age (Time - TotalStartTime)
    # is measured back from the receipt time.
    assert start == received - METER_AGE_NS
    assert first >= received


def test_tasmota_total_start_time_in_utc_when_times_are_utc() -> None:
    ctx = make_context()
    sub = SubscribeConfig(topic="tele/{device}/+", format="tasmota", naive_time="utc")
    source = MqttSource(MqttConfig(subscribe=(sub,)), ctx)
    _emit(source, ctx, "tele/pow1/SENSOR", json.dumps(TASMOTA_POW).encode(), received_ns=0)
    [(start, first)] = _entries(ctx, "hw.energy")
    assert first == int(datetime(2019, 11, 3, 19, 34, 28, tzinfo=timezone.utc).timestamp()) * 10**9
    assert start == int(datetime(2019, 10, 30, 19, 54, 52, tzinfo=timezone.utc).timestamp()) * 10**9


def test_tasmota_start_after_its_time_is_ignored() -> None:
    ctx = make_context()
    sub = SubscribeConfig(topic="tele/{device}/+", format="tasmota", naive_time="utc")
    source = MqttSource(MqttConfig(subscribe=(sub,)), ctx)
    doc = {"Time": "2019-11-03T19:34:28", "ENERGY": {"TotalStartTime": "2020-01-01T00:00:00", "Total": 1.5}}
    _emit(source, ctx, "tele/pow1/SENSOR", json.dumps(doc).encode(), received_ns=0)
    [(start, first)] = _entries(ctx, "hw.energy")
    assert start == first
