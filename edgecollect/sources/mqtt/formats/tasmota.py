"""`tasmota`: tele/<topic>/SENSOR, STATE, LWT and stat/<topic>/POWER<n> of Tasmota firmware.

Subscribe with a template that captures the device, e.g. `tele/{device}/+` (or `stat/{device}/+`);
without a capture the level before the last is the device. The last level selects the handling:

    SENSOR, STATE, STATUS8 (StatusSNS wrapper)   JSON readings
    LWT                                          Online/Offline -> device.online 1/0 (state)
    POWER, POWER<n>                              ON/OFF -> tasmota.power 1/0, channel n

Each top-level object is a sensor: `sensor.type` is its key without the `-n` index, `sensor.id` is
its 1-Wire `Id` when present (indices renumber when a probe is added), else the key. Known keys get
unit-normalised names (units.py); `TempUnit` F is converted to Cel; ENERGY Total is cumulative
energy in J (Tasmota sends kWh; its start time is the meter's `TotalStartTime`, else the first
point's time), Today/Yesterday are
gauges that reset (sensor.energy.today/.yesterday), Period is Wh. Arrays (multi-channel meters)
give `channel` = index. `Time` has no zone unless SetOption52 is on, so by default readings are
stamped on receipt (`naive_time` = "utc"/"local" to use it). Strings that are not states are
ignored: STATE is full of them (SSId, Uptime) and they are not readings.
"""

from __future__ import annotations

import re
from datetime import datetime

from edgecollect.model import AttrValue, Kind, Parsed
from edgecollect.sources.mqtt.formats.common import (
    Builder,
    Json,
    Message,
    Metadata,
    Rule,
    add_json_leaf,
    decode_text,
    flatten,
    load_json_object,
    parse_time,
)
from edgecollect.sources.mqtt.formats.units import quantity

_SKIP = frozenset({"Time", "TempUnit", "PressureUnit", "SpeedUnit", "TotalStartTime", "Id", "Epoch"})
_INDEXED = re.compile(r"^([A-Za-z_]+?)(\d+)$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_ENERGY: dict[str, tuple[str, str, Kind]] = {
    "Total": ("hw.energy", "kWh", "cumulative"),
    "Today": ("sensor.energy.today", "kWh", "gauge"),
    "Yesterday": ("sensor.energy.yesterday", "kWh", "gauge"),
    "Period": ("sensor.energy.period", "Wh", "gauge"),
}
_STATE: dict[str, tuple[str, str]] = {
    "UptimeSec": ("device.uptime", "s"),
    "Heap": ("tasmota.heap", "KiBy"),
    "Vcc": ("hw.voltage", "V"),
    "Wifi.Signal": ("sensor.signal_strength", "dBm"),
    "Wifi.RSSI": ("sensor.wifi.quality", "%"),
}


def snake(key: str) -> str:
    return _CAMEL.sub("_", key).lower().replace("-", "_").replace(" ", "_")


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    levels = msg.topic.split("/")
    last = levels[-1].upper()
    b = Builder(msg, rule)
    if "device.id" not in b.base and len(levels) >= 2:
        b.base["device.id"] = levels[-2]
    if last == "LWT":
        text = decode_text(msg.payload)
        if text is None:
            return Parsed(outcome="not_utf8")
        b.text("LWT", "device.online", text, log_other=False)
        return Parsed(tuple(b.points), (), "availability") if b.points else Parsed(outcome="ignored")
    if last.startswith("POWER") and (last == "POWER" or last[5:].isdigit()):
        text = decode_text(msg.payload)
        if text is None:
            return Parsed(outcome="not_utf8")
        extra: dict[str, AttrValue] | None = {"channel": int(last[5:])} if last != "POWER" else None
        b.text(levels[-1], rule.name("power"), text, extra=extra, log_other=False)
        return b.result("no_reading")
    if last not in ("SENSOR", "STATE", "STATUS8", "STATUS10"):
        return Parsed(outcome="ignored")
    doc, reason = load_json_object(msg.payload)
    if reason:
        return Parsed(outcome=reason)
    inner = doc.get("StatusSNS")
    if isinstance(inner, dict):
        doc = inner
    time_ns = None
    if rule.cfg.time == "auto" and "Time" in doc:
        when = parse_time(doc["Time"] if isinstance(doc["Time"], str) else None, rule.cfg.naive_time)
        if isinstance(when, str):
            b.reject("bad_time")
        else:
            time_ns = when
    temp_unit = doc.get("TempUnit")
    pressure_unit = doc.get("PressureUnit")
    units = {
        "temp": temp_unit if isinstance(temp_unit, str) else "C",
        "pressure": pressure_unit if isinstance(pressure_unit, str) else "hPa",
    }
    for key, value in doc.items():
        if key in _SKIP:
            continue
        if isinstance(value, dict) and key != "Wifi":
            start_ns = _total_start_ns(value, doc.get("Time"), time_ns, msg.received_ns) if key == "ENERGY" else None
            _sensor(b, key, value, units, time_ns, start_ns)
        else:
            _top_level(b, key, value, time_ns)
    return b.result("no_reading")


def _top_level(b: Builder, key: str, value: Json, time_ns: int | None) -> None:
    for item in flatten(value, b.rule.max_depth, key):
        if item is None:
            b.reject("too_deep")
            continue
        path, leaf, channel = item
        extra: dict[str, AttrValue] | None = {"channel": channel} if channel is not None else None
        known = _STATE.get(path)
        if known is not None:
            add_json_leaf(b, path, leaf, known[0], known[1], extra=extra, time_ns=time_ns, log_other=False)
            continue
        m = _INDEXED.match(path)
        if m is not None and m.group(1) in ("POWER", "Switch", "Dimmer", "Channel"):
            extra = {"channel": int(m.group(2))}
            name = b.rule.name(snake(m.group(1)))
        else:
            name = b.rule.name(snake(path))
        add_json_leaf(b, path, leaf, name, extra=extra, time_ns=time_ns, log_other=False)


def _total_start_ns(energy: dict[str, Json], doc_time: Json, time_ns: int | None, received_ns: int) -> int | None:
    """When ENERGY Total began counting, from `TotalStartTime` (set by Tasmota at reset), or None.

    Tasmota writes both `Time` and `TotalStartTime` on the device's own clock, usually without a
    zone. Their difference is the meter's age whatever the zone, so the start is the reading's time
    minus that age; a zoned `TotalStartTime` is taken as it is.
    """
    raw = energy.get("TotalStartTime")
    start = _wall(raw) if isinstance(raw, str) else None
    if start is None:
        return None
    if start.tzinfo is not None:
        return _ns(start)
    now = _wall(doc_time) if isinstance(doc_time, str) else None
    if now is None:
        return None
    age = now.replace(tzinfo=None) - start
    if age.total_seconds() < 0:
        return None  # the device's clock was set back since: no usable start
    age_ns = (age.days * 86_400 + age.seconds) * 10**9 + age.microseconds * 1000
    return (time_ns if time_ns is not None else received_ns) - age_ns


def _wall(text: str) -> datetime | None:
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _ns(when: datetime) -> int:
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def _sensor(
    b: Builder, sensor: str, obj: dict[str, Json], units: dict[str, str], time_ns: int | None,
    start_ns: int | None = None,
) -> None:
    sensor_id = obj.get("Id")
    base: dict[str, AttrValue] = {
        "sensor.type": sensor.split("-", 1)[0],
        "sensor.id": sensor_id if isinstance(sensor_id, str) and sensor_id else sensor,
    }
    for item in flatten(obj, b.rule.max_depth - 1):
        if item is None:
            b.reject("too_deep")
            continue
        sub, leaf, channel = item
        if sub in _SKIP:
            continue
        extra = base if channel is None else {**base, "channel": channel}
        path = f"{sensor}.{sub}"
        leaf_key = sub.rsplit(".", 1)[-1]
        kind: Kind = "gauge"
        if sensor == "ENERGY" and leaf_key in _ENERGY:
            name, unit, kind = _ENERGY[leaf_key]
        else:
            q = quantity(leaf_key)
            if q is not None and q.name != "hw.energy":
                name, unit, kind = q.name, q.unit, q.kind
                if q.unit == "Cel":
                    unit = units["temp"]
                elif q.unit == "hPa":
                    unit = units["pressure"]
            else:
                name, unit = b.rule.name(f"{snake(sensor.split('-', 1)[0])}.{snake(sub)}"), ""
        add_json_leaf(b, path, leaf, name, unit, kind=kind, extra=extra, time_ns=time_ns, log_other=False,
                      start_time_ns=start_ns)
