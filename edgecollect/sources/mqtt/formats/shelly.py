"""`shelly`: Shelly Gen2+ JSON-RPC notifications, component status topics, and `online`.

Subscribe with `{device}/#` under the device's topic prefix (default: the device id), or
`shellies/{device}/#`. Topics, after the device:

    events/rpc          NotifyStatus / NotifyFullStatus: params {"ts": s, "<component>:<id>": {...}};
                        NotifyEvent: each event becomes a log record
    status/<comp>:<id>  the whole status of one component (status_ntf, off by default)
    online              true/false -> device.online 1/0

NotifyStatus is a delta carrying only what changed: we emit exactly the fields present and never
invent zeros for missing ones. `device.id` is the payload's `src` when present. Each component
gives `component` and `channel` attributes (`switch:0` -> switch, 0). Known keys get unit-
normalised names (apower -> hw.power W, aenergy.total -> hw.energy J from Wh, temperature.tC ->
hw.temperature Cel, output -> shelly.output 1/0); other numbers are `shelly.<component>.<key>`.
`ts` (float seconds, UTC) is the reading time. Per-minute energy arrays, `tF` and housekeeping
components (sys, wifi, cloud, mqtt, ble, ws) are skipped unless `include` names them.
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Kind, Parsed
from edgecollect.sources.mqtt.formats.common import (
    Builder,
    Json,
    Message,
    Metadata,
    Rule,
    add_json_leaf,
    epoch_ns,
    flatten,
    load_json_object,
)
from edgecollect.sources.mqtt.formats.units import quantity

_HOUSEKEEPING = frozenset({"sys", "wifi", "cloud", "mqtt", "ble", "ws", "eth", "ui", "kvs", "sntp", "bthome"})
_SKIPPED = frozenset({"id", "source", "tF", "by_minute", "minute_ts", "errors"})
_KNOWN: dict[str, tuple[str, str, Kind]] = {
    "aenergy.total": ("hw.energy", "Wh", "cumulative"),
    "ret_aenergy.total": ("sensor.energy.returned", "Wh", "cumulative"),
    "total_act_energy": ("hw.energy", "Wh", "cumulative"),
    "total_act_ret_energy": ("sensor.energy.returned", "Wh", "cumulative"),
    "temperature.tC": ("hw.temperature", "Cel", "gauge"),
    "output": ("shelly.output", "1", "gauge"),
    "state": ("shelly.state", "1", "gauge"),
    "rssi": ("sensor.signal_strength", "dBm", "gauge"),
}


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    b = Builder(msg, rule)
    device = msg.captures.get("device")
    rest = msg.topic.split(f"{device}/", 1)[-1] if device else msg.topic.split("/", 1)[-1]
    if rest == "online":
        b.base.setdefault("device.id", device or msg.topic.split("/", 1)[0])
        b.text("online", "device.online", msg.payload.decode("utf-8", "replace"), log_other=False)
        return Parsed(tuple(b.points), (), "availability") if b.points else Parsed(outcome="ignored")
    is_rpc = rest == "events/rpc"
    if not is_rpc and not rest.startswith("status/"):
        return Parsed(outcome="ignored")
    doc, reason = load_json_object(msg.payload)
    if reason:
        return Parsed(outcome=reason)
    src = doc.get("src")
    if isinstance(src, str) and src:
        b.base["device.id"] = src
    elif "device.id" not in b.base:
        b.base["device.id"] = device or msg.topic.split("/", 1)[0]
    if not is_rpc:
        _component(b, rest[len("status/"):], doc, None)
        return b.result("no_reading")
    method, params = doc.get("method"), doc.get("params")
    if not isinstance(params, dict):
        return Parsed(outcome="wrong_type") if method else Parsed(outcome="ignored")
    time_ns = None
    ts = params.get("ts")
    if rule.cfg.time == "auto" and isinstance(ts, (int, float)) and not isinstance(ts, bool):
        when = epoch_ns(ts, "s")
        time_ns = when if isinstance(when, int) else None
    if method == "NotifyEvent":
        events = params.get("events")
        for event in events if isinstance(events, list) else []:
            if isinstance(event, dict):
                comp, name = event.get("component"), event.get("event")
                extra: dict[str, AttrValue] = {"component": str(comp)} if comp else {}
                b.log("event", str(name), extra, time_ns)
        return b.result("ignored")
    if method not in ("NotifyStatus", "NotifyFullStatus"):
        return Parsed(outcome="ignored")
    for key, value in params.items():
        if key != "ts" and isinstance(value, dict):
            _component(b, key, value, time_ns)
    return b.result("no_reading")


def _component(b: Builder, key: str, obj: dict[str, Json], time_ns: int | None) -> None:
    component, _, index = key.partition(":")
    if component in _HOUSEKEEPING and not b.rule.cfg.include:
        return
    extra: dict[str, AttrValue] = {"component": component}
    if index.isdigit():
        extra["channel"] = int(index)
    for item in flatten(obj, b.rule.max_depth - 1):
        if item is None:
            b.reject("too_deep")
            continue
        sub, leaf, channel = item
        if sub.rsplit(".", 1)[-1] in _SKIPPED and not b.rule.cfg.include:
            continue
        path = f"{key}.{sub}"
        known = _KNOWN.get(sub)
        if known is not None:
            name, unit, kind = known
        else:
            q = quantity(sub)
            if q is not None and q.name != "hw.energy":
                name, unit, kind = q.name, q.unit, q.kind
            else:
                name, unit, kind = b.rule.name(f"{component}.{sub}"), "", "gauge"
        point_extra = extra if channel is None else {**extra, "index": channel}
        add_json_leaf(
            b, path, leaf, name, unit, kind=kind, extra=point_extra, time_ns=time_ns, log_other=False,
        )
