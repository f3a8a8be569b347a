"""The MQTT source's path from parsed points to the ring: remembered series ids must change nothing
of what the general path (key guard + SourceContext.emit) stores, refuses or counts."""

from __future__ import annotations

import json
import math

import pytest

from edgecollect.buffer import FLAG_INT
from edgecollect.model import Point, Series
from edgecollect.sources.base import SourceContext
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from edgecollect.sources.mqtt import emit as emit_module
from edgecollect.sources.mqtt.emit import KeyGuard, PointEmitter
from tests.sources.mqtt.mqtt_support import make_context


def emitter(ctx: SourceContext, per_device: int = 1000) -> PointEmitter:
    return PointEmitter(ctx, KeyGuard(per_device, 100), ctx.counter("points_rejected", "reason"))


def rejected(ctx: SourceContext, reason: str) -> int:
    counter = ctx.telemetry.find("edgecollect.mqtt.points_rejected", source=ctx.name)
    return counter.value(reason) if counter is not None else 0


def test_remembered_series_store_what_the_general_path_stores() -> None:
    ctx = make_context()
    out = emitter(ctx)
    temp, count = Series("t", "Cel"), Series("n", kind="cumulative")
    for token in (1, 2, 3):  # the first message takes the general path, the others the remembered ids
        assert out.emit([Point(temp, 20.5 + token), Point(count, token, time_ns=10**18 + token)], token) == 2
    drained = ctx.ring.drain()
    assert list(drained.series_ids) == [0, 1] * 3
    assert list(drained.floats[0::2]) == [21.5, 22.5, 23.5]
    assert list(drained.ints[1::2]) == [1, 2, 3] and all(f & FLAG_INT for f in drained.flags[1::2])
    assert list(drained.times_ns[1::2]) == [10**18 + 1, 10**18 + 2, 10**18 + 3]
    assert drained.max_token == 3
    assert ctx.series.start_time_ns(1) == 10**18 + 1  # interned once, by the general path
    accepted = ctx.telemetry.find("edgecollect.mqtt.points_accepted", source=ctx.name)
    assert accepted is not None and accepted.total() == 6


def test_a_series_refused_by_max_series_is_refused_and_counted_every_time() -> None:
    ctx = make_context()
    ctx.budget = ctx.series.budget(ctx.name, limit=2)
    out = emitter(ctx)
    series = [Series(f"k{k}") for k in range(3)]
    for token in range(1, 6):
        assert out.emit([Point(s, 1.0) for s in series], token) == 2
    assert rejected(ctx, "max_series") == 5  # never remembered, so never let through
    assert len(ctx.ring) == 10 and len(ctx.series) == 2


def test_a_series_refused_by_the_key_guard_is_refused_every_time() -> None:
    ctx = make_context()
    out = emitter(ctx, per_device=1)
    a = Series("a", attributes=(("device.id", "d"),))
    b = Series("b", attributes=(("device.id", "d"),))
    for token in (1, 2, 3):
        assert out.emit([Point(a, 1.0), Point(b, 2.0)], token) == 1
    assert rejected(ctx, "keys_per_device") == 3
    assert list(ctx.ring.drain().floats) == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1 << 63])
def test_a_bad_value_on_a_remembered_series_is_still_rejected(bad: float) -> None:
    ctx = make_context()
    out = emitter(ctx)
    s = Series("v")
    assert out.emit([Point(s, 1.0)], 1) == 1
    assert out.emit([Point(s, bad), Point(s, 2.0)], 2) == 1
    reason = "out_of_range" if isinstance(bad, int) else "not_finite"
    counter = ctx.telemetry.find("edgecollect.mqtt.points_rejected", source=ctx.name)
    assert counter is not None and counter.value(reason) == 1
    assert list(ctx.ring.drain().floats) == [1.0, 2.0]


def test_an_equal_but_distinct_series_object_is_not_taken_for_a_remembered_one() -> None:
    ctx = make_context()
    out = emitter(ctx)
    assert out.emit([Point(Series("x"), 1.0)], 1) == 1
    assert out.emit([Point(Series("x"), 2.0)], 2) == 1  # another object: the registry finds the same id
    assert list(ctx.ring.drain().series_ids) == [0, 0]


def test_remembered_ids_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(emit_module, "REMEMBERED", 4)
    ctx = make_context()
    out = emitter(ctx)
    kept = [Series(f"k{k}") for k in range(10)]
    for token, s in enumerate(kept, start=1):
        out.emit([Point(s, 1.0)], token)
        assert len(out._ids) <= 4
    assert out.emit([Point(kept[0], 2.0)], 11) == 1  # forgotten, found again through the registry
    assert list(ctx.ring.drain().series_ids) == [*range(10), 0]


def test_a_steady_json_stream_reuses_series_and_ids() -> None:
    ctx = make_context()
    src = MqttSource(MqttConfig(subscribe=(SubscribeConfig(topic="s/{device}", format="json"),)), ctx)
    for token in range(1, 4):
        parsed = src.handle("s/d1", b'{"a":1.5,"b":2}')
        assert src._emit(parsed, token)
    drained = ctx.ring.drain()
    assert list(drained.series_ids) == [0, 1] * 3 and len(ctx.series) == 2
    assert ctx.series.series(0) == Series("a", "1", "gauge", (("device.id", "d1"),))


def test_a_json_object_reads_as_the_flattened_document_in_its_order() -> None:
    """The flat-object shortcut of formats/json.py must give what the general flatten path gives."""
    from edgecollect.sources.mqtt.formats.common import Builder, Json, Message, Metadata, Rule, flatten
    from edgecollect.sources.mqtt.formats.json import _leaves, parse

    cfg = SubscribeConfig(topic="s/{device}", format="json", time_key="ts")
    src = MqttSource(MqttConfig(subscribe=(cfg,)), make_context())
    rule = src._rules[0][0]
    doc: Json = {"a": 1, "b": {"c": 2.5, "d": [3, "on"]}, "": 4, "ts": 1_700_000_000, "e": "hello", "f": True,
           "g": [5.5, 6], "h": None, "i": 1 << 70, "j": 7.25}
    payload = json.dumps(doc).encode()
    got = parse(Message("s/x", payload, {"device": "x"}, False, 10**18), rule, Metadata())
    general = Builder(Message("s/x", payload, {"device": "x"}, False, 10**18), Rule.build(
        cfg, "", {}, "if_recent", 300.0, 8))
    _leaves(general, general.rule, flatten(doc, 8), "x", "ts", 1_700_000_000 * 10**9)
    want = general.result("no_reading")
    assert [(p.series, p.value, p.time_ns) for p in got.points] == [
        (p.series, p.value, p.time_ns) for p in want.points]
    assert [p.series.name for p in got.points] == ["a", "b.c", "b.d", "b.d", "x", "f", "g", "g", "j"]
    assert [(r.body, dict(r.attributes)["mqtt.key"]) for r in got.logs] == [("hello", "e")]
    assert got.outcome == want.outcome == "number_range"  # 1 << 70 is refused, the rest kept
