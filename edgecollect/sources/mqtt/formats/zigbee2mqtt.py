"""`zigbee2mqtt`: zigbee2mqtt/<friendly name> JSON, availability, and bridge/devices metadata.

Subscribe with `zigbee2mqtt/{device...}`: friendly names may contain `/` (`kitchen/floor_light`),
so the whole rest of the topic is captured and resolved here:

    bridge/devices               retained device list: friendly name -> IEEE address, model, units
    bridge/state                 online/offline (or {"state": ...}) -> device.online of "bridge"
    bridge/<anything else>       ignored
    <name>/availability          online/offline -> device.online 1/0
    <name>/set, <name>/get       commands, ignored
    <name>                       readings

`device.id` is the IEEE address once bridge/devices has been seen (stable across renames), else
the friendly name; `device.name` is the friendly name. Units come from the device's `exposes`
(battery voltage is mV there and converted to V), else from units.py defaults, so without
bridge/devices a battery `voltage` needs `units = { voltage = "mV" }`. Booleans and ON/OFF become
1/0, `action`/`click` and other strings become log records (events), `last_seen` with a zone (or
epoch ms) is the reading time, `update` objects are skipped unless included.
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Parsed
from edgecollect.sources.mqtt.formats.common import (
    Builder,
    Json,
    Message,
    Metadata,
    Rule,
    Z2mDevice,
    add_json_leaf,
    decode_text,
    flatten,
    load_json,
    load_json_object,
    parse_time,
)
from edgecollect.sources.mqtt.formats.units import quantity

_SKIPPED = ("update", "update_available", "last_seen", "elapsed")


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    name = msg.captures.get("device") or msg.topic.split("/", 1)[-1]
    b = Builder(msg, rule)
    b.base.pop("device.id", None)
    if name == "bridge/devices":
        return _devices(msg.payload, meta)
    if name == "bridge/state":
        return _availability(b, "bridge", msg.payload)
    if name.startswith("bridge/"):
        return Parsed(outcome="ignored")
    if name not in meta.z2m:
        head, _, tail = name.rpartition("/")
        if tail in ("set", "get") and head:
            return Parsed(outcome="ignored")
        if tail == "availability" and head:
            return _availability(b, head, msg.payload, meta)
    device = meta.z2m.get(name)
    b.base["device.id"] = device.ieee if device is not None else name
    b.base["device.name"] = name
    doc, reason = load_json_object(msg.payload)
    if reason:
        return Parsed(outcome=reason)
    time_ns = None
    if rule.cfg.time == "auto" and "last_seen" in doc:
        seen = doc["last_seen"]
        when = parse_time(seen if not isinstance(seen, (dict, list)) else None, "receipt")
        time_ns = when if isinstance(when, int) else None
    units = device.units if device is not None else {}
    for item in flatten(doc, rule.max_depth):
        if item is None:
            b.reject("too_deep")
            continue
        key, leaf, channel = item
        if key.split(".", 1)[0] in _SKIPPED and not rule.cfg.include:
            continue
        extra: dict[str, AttrValue] | None = {"channel": channel} if channel is not None else None
        q = quantity(key)
        unit = units.get(key) or (q.unit if q is not None else "")
        metric = q.name if q is not None else rule.name(key)
        kind = q.kind if q is not None else "gauge"
        add_json_leaf(b, key, leaf, metric, unit, kind=kind, extra=extra, time_ns=time_ns)
    return b.result("no_reading")


def _availability(b: Builder, name: str, payload: bytes, meta: Metadata | None = None) -> Parsed:
    text = decode_text(payload)
    if text is None:
        return Parsed(outcome="not_utf8")
    doc, reason = load_json(payload)
    if not reason and isinstance(doc, dict) and isinstance(doc.get("state"), str):
        text = str(doc["state"])
    device = meta.z2m.get(name) if meta is not None else None
    b.base["device.id"] = device.ieee if device is not None else name
    b.base["device.name"] = name
    b.text("availability", "device.online", text, log_other=False)
    if b.points:
        return Parsed(tuple(b.points), (), "availability")
    return Parsed(outcome="ignored")


def _devices(payload: bytes, meta: Metadata) -> Parsed:
    doc, reason = load_json(payload)
    if reason:
        return Parsed(outcome=reason)
    if not isinstance(doc, list):
        return Parsed(outcome="wrong_type")
    meta.z2m.clear()
    for entry in doc:
        if not isinstance(entry, dict) or meta.full(meta.z2m):
            continue
        friendly, ieee = entry.get("friendly_name"), entry.get("ieee_address")
        if not isinstance(friendly, str) or not isinstance(ieee, str):
            continue
        definition = entry.get("definition")
        device = Z2mDevice(ieee)
        if isinstance(definition, dict):
            model, vendor = definition.get("model"), definition.get("vendor")
            device.model = model if isinstance(model, str) else ""
            device.vendor = vendor if isinstance(vendor, str) else ""
            _expose_units(definition.get("exposes"), device.units, 0)
        meta.z2m[friendly] = device
    return Parsed(outcome="metadata")


def _expose_units(exposes: Json, units: dict[str, str], depth: int) -> None:
    """Walk `exposes` (features nest inside composite/light types) collecting property -> unit."""
    if not isinstance(exposes, list) or depth > 4:
        return
    for expose in exposes:
        if not isinstance(expose, dict):
            continue
        prop, unit = expose.get("property"), expose.get("unit")
        if isinstance(prop, str) and isinstance(unit, str) and len(units) < 256:
            units[prop] = unit
        _expose_units(expose.get("features"), units, depth + 1)
