"""`esphome`: ESPHome's native MQTT component: `<node>/<component>/<object_id>/state` and `<node>/status`.

Subscribe with e.g. `{device}/+/+/state` and `{device}/status`, or `livingroom/#` (then the node is
everything before the last three levels). State payloads are plain text: a number for a sensor,
ON/OFF for binary sensors and switches, any text for a text_sensor (-> log record). `nan` and
`None` mean no reading. The payload has no unit: it comes from the Home Assistant discovery config
for the same state topic (subscribe `homeassistant/#` with format `homeassistant` too), else from
`units` keyed by object_id. Names: the device_class name when discovery gives one
(`hw.temperature`), else `esphome.<component>`; `sensor.id` = object_id, `device.id` = node.
States are retained by default in ESPHome and carry no time, so with `retained = "if_recent"`
retained numeric readings are dropped (ON/OFF states are kept).
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Parsed
from edgecollect.sources.mqtt.formats.common import Builder, Message, Metadata, Rule, decode_text
from edgecollect.sources.mqtt.formats.homeassistant import add_entity_value


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    levels = msg.topic.split("/")
    b = Builder(msg, rule)
    if levels[-1] == "status" and len(levels) >= 2:
        node = "/".join(levels[:-1])
        b.base.setdefault("device.id", node)
        text = decode_text(msg.payload)
        if text is None:
            return Parsed(outcome="not_utf8")
        b.text("status", "device.online", text, log_other=False)
        return Parsed(tuple(b.points), (), "availability") if b.points else Parsed(outcome="ignored")
    if levels[-1] != "state" or len(levels) < 4:
        return Parsed(outcome="ignored")
    component, object_id = levels[-3], levels[-2]
    b.base.setdefault("device.id", "/".join(levels[:-3]))
    entity = meta.entities.get(msg.topic)
    if entity is not None and entity.value_path is not None:
        add_entity_value(b, entity, msg.payload, object_id)
        return b.result("no_reading")
    text = decode_text(msg.payload)
    if text is None:
        return Parsed(outcome="not_utf8")
    extra: dict[str, AttrValue] = {"sensor.id": object_id}
    b.text(object_id, rule.name(component), text, extra=extra)
    return b.result("no_reading")
