"""`homeassistant`: MQTT discovery configs as metadata, and the state topics they describe.

Config topics `<prefix>/<component>/[<node_id>/]<object_id>/config` (retained JSON) fill the
metadata index: state topic -> unit, device_class, state_class, unique_id, device identifier and a
value path. No metric comes from a config; an empty payload deletes the entity. Abbreviated keys
(`stat_t`, `unit_of_meas`, `dev_cla`, `val_tpl`, `uniq_id`, `dev:{ids}`) and the `~` base topic
are expanded. Only trivial templates are understood (`{{ value }}`, `{{ value_json.x }}`,
`{{ value_json['X'].Y }}`); others mark the entity unsupported and its states are ignored: we
never run Jinja.

Any other topic matched by a `homeassistant` rule is a state topic: the value is read with the
entity's path and named from its device_class (units.py), else `<prefix>.<component>`, with
`sensor.id` = unique_id and `device.id` = the first device identifier.
"""

from __future__ import annotations

import re

from edgecollect.model import AttrValue, Kind, Parsed
from edgecollect.sources.mqtt.formats.common import (
    Builder,
    Entity,
    Json,
    Message,
    Metadata,
    Rule,
    add_json_leaf,
    decode_text,
    load_json,
    load_json_object,
)
from edgecollect.sources.mqtt.formats.units import quantity

ABBREVIATIONS = {
    "stat_t": "state_topic", "unit_of_meas": "unit_of_measurement", "dev_cla": "device_class",
    "stat_cla": "state_class", "val_tpl": "value_template", "uniq_id": "unique_id", "dev": "device",
    "avty_t": "availability_topic", "json_attr_t": "json_attributes_topic", "obj_id": "object_id",
}
STATE_CLASS_KINDS: dict[str, Kind] = {
    "measurement": "gauge", "total_increasing": "cumulative", "total": "updown",
}
_TEMPLATE = re.compile(
    r"^\{\{\s*value(?:_json((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\s*'[^']*'\s*\]|\[\s*\"[^\"]*\"\s*\])+))?\s*\}\}$"
)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']*)'\s*\]|\[\s*\"([^\"]*)\"\s*\]")


def template_path(template: str) -> tuple[str, ...] | None:
    """() for the whole value, the key path for value_json forms, None for anything else."""
    if not template:
        return ()
    m = _TEMPLATE.match(template.strip())
    if m is None:
        return None
    if m.group(1) is None:
        return ()
    return tuple(a or b or c for a, b, c in _STEP.findall(m.group(1)))


def is_config_topic(topic: str) -> bool:
    return topic.endswith("/config") and topic.count("/") >= 3


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    if is_config_topic(msg.topic):
        return parse_config(msg, meta)
    return parse_state(msg, rule, meta)


def parse_config(msg: Message, meta: Metadata) -> Parsed:
    if not msg.payload:
        old = meta.config_topics.pop(msg.topic, None)
        if old is not None:
            meta.entities.pop(old, None)
        return Parsed(outcome="metadata")
    doc, reason = load_json_object(msg.payload)
    if reason:
        return Parsed(outcome=reason)
    cfg = {ABBREVIATIONS.get(k, k): v for k, v in doc.items()}
    base = cfg.get("~")
    state_topic = cfg.get("state_topic")
    if not isinstance(state_topic, str) or not state_topic:
        return Parsed(outcome="metadata")  # e.g. a button: nothing to read
    if isinstance(base, str):  # '~' may stand at either end of a topic
        if state_topic.startswith("~"):
            state_topic = base + state_topic[1:]
        elif state_topic.endswith("~"):
            state_topic = state_topic[:-1] + base
    device = cfg.get("device")
    device_id = ""
    if isinstance(device, dict):
        ids = device.get("identifiers", device.get("ids"))
        if isinstance(ids, list) and ids and isinstance(ids[0], str):
            device_id = ids[0]
        elif isinstance(ids, str):
            device_id = ids
    levels = msg.topic.split("/")
    template = cfg.get("value_template")
    entity = Entity(
        unit=_str(cfg.get("unit_of_measurement")),
        device_class=_str(cfg.get("device_class")),
        state_class=_str(cfg.get("state_class")),
        unique_id=_str(cfg.get("unique_id")) or levels[-2],
        device_id=device_id,
        component=levels[1],
        value_path=template_path(template) if isinstance(template, str) else (),
    )
    if msg.topic not in meta.config_topics and meta.full(meta.entities):
        return Parsed(outcome="ignored")
    old = meta.config_topics.get(msg.topic)
    if old is not None and old != state_topic:
        meta.entities.pop(old, None)
    meta.config_topics[msg.topic] = state_topic
    meta.entities[state_topic] = entity
    return Parsed(outcome="metadata")


def parse_state(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    entity = meta.entities.get(msg.topic)
    if entity is None:
        return Parsed(outcome="ignored")
    if entity.value_path is None:
        return Parsed(outcome="ignored")  # a template we will not evaluate
    b = Builder(msg, rule)
    if entity.device_id and "device.id" not in b.base:
        b.base["device.id"] = entity.device_id
    add_entity_value(b, entity, msg.payload, entity.unique_id)
    return b.result("no_reading")


def add_entity_value(b: Builder, entity: Entity, payload: bytes, sensor_id: str) -> None:
    """One state payload described by `entity`, added to `b`."""
    value: Json
    if entity.value_path:
        doc, reason = load_json(payload)
        if reason:
            b.reject(reason)
            return
        value = doc
        for step in entity.value_path:
            if not isinstance(value, dict) or step not in value:
                b.reject("wrong_type")
                return
            value = value[step]
        if isinstance(value, (dict, list)):
            b.reject("wrong_type")
            return
    else:
        text = decode_text(payload)
        if text is None:
            b.reject("not_utf8")
            return
        value = text
    q = quantity(entity.device_class) if entity.device_class else None
    name = q.name if q is not None else b.rule.name(entity.component or "sensor")
    kind: Kind = STATE_CLASS_KINDS.get(entity.state_class, q.kind if q is not None else "gauge")
    extra: dict[str, AttrValue] = {"sensor.id": sensor_id}
    add_json_leaf(b, sensor_id, value, name, entity.unit, kind=kind, extra=extra)


def _str(value: Json) -> str:
    return value if isinstance(value, str) else ""
