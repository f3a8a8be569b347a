"""Topic templates, config checks, guards and policies of the MQTT source (no broker needed)."""

from __future__ import annotations

import json
import time

import pytest

from edgecollect.model import Point, Series
from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from edgecollect.sources.mqtt.emit import KeyGuard
from edgecollect.sources.mqtt.formats.homeassistant import template_path
from edgecollect.sources.mqtt.formats.units import convert
from edgecollect.sources.mqtt.topics import capture_attributes, compile_template
from tests.sources.mqtt.mqtt_support import make_context


@pytest.mark.parametrize(
    ("template", "topic_filter", "topic", "captures"),
    [
        ("tele/{device}/SENSOR", "tele/+/SENSOR", "tele/plug1/SENSOR", {"device": "plug1"}),
        ("tele/{device}/SENSOR", "tele/+/SENSOR", "tele/a/b/SENSOR", None),
        ("zigbee2mqtt/{device...}", "zigbee2mqtt/#", "zigbee2mqtt/kitchen/floor_light",
         {"device": "kitchen/floor_light"}),
        ("zigbee2mqtt/{device...}", "zigbee2mqtt/#", "zigbee2mqtt", None),
        ("sensors/{line}/{device}/{metric}", "sensors/+/+/+", "sensors/l1/p4/temp",
         {"line": "l1", "device": "p4", "metric": "temp"}),
        ("home/#", "home/#", "home", {}),
        ("home/#", "home/#", "home/a/b", {}),
        ("home/#", "home/#", "homer/a", None),
        ("#", "#", "anything/at/all", {}),
        ("a/+/c", "a/+/c", "a/b/c", {}),
        ("shellies/{device}/#", "shellies/+/#", "shellies/x/relay/0", {"device": "x"}),
        ("{site...}/x/{device}", "#", "s1/s2/x/d", {"site": "s1/s2", "device": "d"}),
        ("a.b/{device}", "a.b/+", "aXb/d", None),  # literal levels are not regexes
    ],
)
def test_template_filter_and_captures(
    template: str, topic_filter: str, topic: str, captures: dict[str, str] | None,
) -> None:
    compiled = compile_template(template)
    assert compiled.filter == topic_filter
    assert compiled.match(topic) == captures


def test_captures_become_attributes() -> None:
    got = capture_attributes({"device": "d", "sensor": "s", "metric": "m", "_": "x", "site": "lab", "line": ""})
    assert got == {"device.id": "d", "sensor.id": "s", "site": "lab"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"topic": "tele/{device/SENSOR"}, "template level"),
        ({"topic": "tele/x{device}/SENSOR"}, "template level"),
        ({"topic": "a/#/b"}, "last topic level"),
        ({"topic": "a/b+/c"}, "whole topic levels"),
        ({"topic": ""}, "topic filter"),
        ({"topic": "a", "qos": 3}, "qos"),
        ({"topic": "a", "types": {"x": "counter"}}, "types.x"),
    ],
)
def test_subscribe_config_rejects_with_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SubscribeConfig(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"server": "http://x"}, "server"),
        ({"server": "mqtt://"}, "server"),
        ({"server": "mqtt://h:99999"}, "port"),
        ({"qos": 5}, "qos"),
        ({"max_unacked": 0}, "max_unacked"),
        ({"max_unacked": 70000}, "max_unacked"),
        ({"reconnect_min": 5.0, "reconnect_max": 1.0}, "reconnect"),
    ],
)
def test_mqtt_config_rejects_with_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MqttConfig(**kwargs)  # type: ignore[arg-type]


def test_server_url_gives_host_port_and_tls() -> None:
    assert (MqttConfig().host, MqttConfig().port, MqttConfig().tls_enabled) == ("127.0.0.1", 1883, False)
    tls = MqttConfig(server="mqtts://broker.lan")
    assert (tls.host, tls.port, tls.tls_enabled) == ("broker.lan", 8883, True)
    assert MqttConfig(server="mqtt://b:1999").port == 1999


def source(*subs: SubscribeConfig, **kw: object) -> MqttSource:
    return MqttSource(MqttConfig(subscribe=subs, **kw), make_context())  # type: ignore[arg-type]


def test_payload_over_the_cap_is_rejected_unparsed() -> None:
    src = source(SubscribeConfig(topic="t/{device}", format="json"), max_payload=1024)  # type: ignore[arg-type]
    assert src.handle("t/d", b'{"v":' + b"1" * 2000 + b"}").outcome == "too_large"
    assert src.handle("t/d", b'{"v":1}').outcome == "ok"


def test_first_matching_rule_wins_and_unmatched_is_counted_as_such() -> None:
    src = source(
        SubscribeConfig(topic="a/{device}/special", format="plain", name="special"),
        SubscribeConfig(topic="a/{device}/+", format="json"),
    )
    assert src.handle("a/d/special", b"1").points[0].series.name == "special"
    assert src.handle("a/d/other", b'{"x":2}').points[0].series.name == "x"
    assert src.handle("b/d", b"1").outcome == "unmatched"


def test_retained_reading_with_a_recent_payload_time_is_kept_and_an_old_one_dropped() -> None:
    src = source(SubscribeConfig(topic="s/{device}", format="json", time_key="ts"))
    now = time.time()
    recent = src.handle("s/d", json.dumps({"ts": now - 10, "v": 1.5}).encode(), retained=True)
    assert recent.outcome == "ok" and [p.value for p in recent.points] == [1.5]
    old = src.handle("s/d", json.dumps({"ts": now - 3600, "v": 1.5}).encode(), retained=True)
    assert old.outcome == "retained_dropped" and not old.points


@pytest.mark.parametrize(("policy", "kept"), [("drop", False), ("keep", True)])
def test_retained_policy_drop_and_keep(policy: str, kept: bool) -> None:
    src = source(SubscribeConfig(topic="s/{device}", format="plain", name="v"), retained=policy)
    parsed = src.handle("s/d", b"21.5", retained=True)
    assert bool(parsed.points) is kept


def test_state_table_extends_with_config() -> None:
    src = source(SubscribeConfig(topic="s/{device}", format="json"), states={"heat": 2, "Idle": 0})
    parsed = src.handle("s/d", b'{"mode":"HEAT","fan":"idle","door":"closed","x":"weird"}')
    values = {p.series.name: p.value for p in parsed.points}
    assert values == {"mode": 2, "fan": 0, "door": 0}
    assert [r.body for r in parsed.logs] == ["weird"]


def test_include_and_exclude_globs() -> None:
    src = source(SubscribeConfig(topic="s/{device}", format="json", include=("env.*",), exclude=("env.debug*",)))
    parsed = src.handle("s/d", b'{"env":{"t":1,"debug_x":2},"other":3}')
    assert [p.series.name for p in parsed.points] == ["env.t"]


def test_parser_never_raises_and_bad_units_pass_through() -> None:
    assert convert("furlongs").unit == "furlongs"
    assert convert("°C").unit == "Cel" and convert("kWh").scale == 3.6e6 and convert("%%").unit == "%"
    src = source(SubscribeConfig(topic="s/{device}", format="json", units={"v": "widgets"}))
    assert src.handle("s/d", b'{"v":1}').points[0].series.unit == "widgets"


def test_key_guard_caps_series_per_device_and_devices() -> None:
    guard = KeyGuard(per_device=3, max_devices=2)

    def pts(device: str, keys: range) -> list[Point]:
        return [Point(Series(f"k{k}", attributes=(("device.id", device),)), 1) for k in keys]

    kept, rejected = guard.filter(pts("a", range(5)))
    assert (len(kept), rejected) == (3, 2)
    kept, rejected = guard.filter(pts("a", range(3)))  # known series keep flowing
    assert (len(kept), rejected) == (3, 0)
    assert guard.filter(pts("b", range(1)))[1] == 0
    assert guard.filter(pts("c", range(1)))[1] == 1  # a third device is past max_devices
    total = KeyGuard(per_device=100, max_devices=100, max_total=5)
    assert total.filter(pts("a", range(3)) + pts("b", range(3)))[1] == 1  # the guard's own bound


def test_key_cap_rejects_are_counted_by_the_source() -> None:
    ctx = make_context()
    cfg = MqttConfig(subscribe=(SubscribeConfig(topic="s/{device}", format="json"),), max_keys_per_device=2)
    src = MqttSource(cfg, ctx)
    parsed = src.handle("s/d", b'{"a":1,"b":2,"c":3,"d":4}')
    assert src._emit(parsed, token=1)
    counter = ctx.telemetry.find("edgecollect.mqtt.points_rejected", source=ctx.name)
    assert counter is not None and counter.value("keys_per_device") == 2
    assert len(ctx.ring) == 2


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("{{ value }}", ()),
        ("{{value_json.temperature}}", ("temperature",)),
        ("{{ value_json['BME280'].Humidity }}", ("BME280", "Humidity")),
        ('{{ value_json["a b"] }}', ("a b",)),
        ("{{ value_json.t | float * 2 }}", None),
        ("{% if value %}1{% endif %}", None),
        ("", ()),
    ],
)
def test_only_trivial_home_assistant_templates_are_understood(template: str, path: tuple[str, ...] | None) -> None:
    assert template_path(template) == path
