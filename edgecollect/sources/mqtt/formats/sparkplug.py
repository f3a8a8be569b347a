"""`sparkplug`: Sparkplug B (spBv1.0) NBIRTH/DBIRTH/NDATA/DDATA/NDEATH/DDEATH, decoded by hand.

Topic: `spBv1.0/<group_id>/<message_type>/<edge_node_id>[/<device_id>]` (subscribe `spBv1.0/#`).
Payload: protobuf `org.eclipse.tahu.protobuf.Payload` (eclipse/tahu sparkplug_b.proto). We read
the wire format directly (varints and length-delimited fields, about 100 lines) instead of
generated code: the Python Sparkplug libraries pin paho-mqtt 1.x, and only a handful of fields
matter here: Payload {timestamp=1, metrics=2, seq=3}, Metric {name=1, alias=2, timestamp=3,
datatype=4, is_historical=5, is_null=7, properties=9, int_value=10, long_value=11, float_value=12,
double_value=13, boolean_value=14, string_value=15}, PropertySet {keys=1, values=2},
PropertyValue {string_value=8}.

* BIRTH messages carry name + alias + datatype: we keep the alias map per edge node / device
  (bounded) and emit their values. DATA may carry only aliases; an alias never born is rejected
  (`unknown_alias`): asking the node to rebirth (NCMD) is left to the operator.
* Int8/16/32 travel in the unsigned `int_value` and some publishers sign-extend them (tahu#71):
  values are masked to the datatype's width and sign-extended; Int64 in `long_value` likewise;
  UInt32 may arrive in `long_value` (tahu#397). UInt64 above int64 is `number_range`.
* Names: `<prefix>.<metric name with / as .>` (prefix default "sparkplug"); attributes
  `sparkplug.group_id`, `sparkplug.edge_node_id`, `sparkplug.device_id`, `device.id` (device id,
  else edge node id). Unit from the metric properties `engUnit`/`uom`/`unit`.
* Time: metric timestamp, else payload timestamp (ms UTC). Booleans 1/0; strings are log records;
  `is_null` is no reading. A `seq` that skips is counted (`seq_gap`) and the data kept.
* NDEATH/DDEATH -> device.online 0; BIRTH -> device.online 1. NCMD, DCMD and STATE are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from edgecollect.model import AttrValue, Parsed
from edgecollect.sources.mqtt.formats.common import INT64_MAX, Builder, Message, Metadata, Rule, epoch_ns

Field = tuple[int, int, "int | bytes"]
SIGNED_BITS = {1: 8, 2: 16, 3: 32, 4: 64}
BOOLEAN, STRING, DATETIME, TEXT = 11, 12, 13, 14
UNIT_KEYS = ("engUnit", "uom", "unit", "EngUnit")
MAX_NODES = 1_000  # edge nodes / devices whose BIRTH we remember (oldest forgotten first)
MAX_ALIASES = 2_000  # metrics per node or device


class Bad(Exception):
    """The payload is not the protobuf we expect."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise Bad
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> Iterator[Field]:
    """(field number, wire type, value) of one message; raises Bad on damage."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value
        elif wire == 1:
            if pos + 8 > end:
                raise Bad
            yield number, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise Bad
            yield number, wire, buf[pos : pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise Bad
            yield number, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise Bad


@dataclass
class Metric:
    name: str | None = None
    alias: int | None = None
    timestamp: int | None = None
    datatype: int = 0
    is_null: bool = False
    value: int | float | bool | str | None = None
    value_field: int = 0
    unit: str = ""


def _metric(buf: bytes) -> Metric:
    m = Metric()
    for number, wire, value in fields(buf):
        if number == 1 and isinstance(value, bytes):
            m.name = value.decode("utf-8", "replace")
        elif number == 2 and isinstance(value, int):
            m.alias = value
        elif number == 3 and isinstance(value, int):
            m.timestamp = value
        elif number == 4 and isinstance(value, int):
            m.datatype = value
        elif number == 7 and isinstance(value, int):
            m.is_null = bool(value)
        elif number == 9 and isinstance(value, bytes):
            m.unit = _unit(value)
        elif number in (10, 11) and isinstance(value, int):
            m.value, m.value_field = value, number
        elif number == 12 and isinstance(value, bytes) and wire == 5:
            m.value, m.value_field = struct.unpack("<f", value)[0], number
        elif number == 13 and isinstance(value, bytes) and wire == 1:
            m.value, m.value_field = struct.unpack("<d", value)[0], number
        elif number == 14 and isinstance(value, int):
            m.value, m.value_field = bool(value), number
        elif number == 15 and isinstance(value, bytes):
            m.value, m.value_field = value.decode("utf-8", "replace"), number
    return m


def _unit(buf: bytes) -> str:
    keys: list[str] = []
    values: list[str | None] = []
    for number, _, value in fields(buf):
        if number == 1 and isinstance(value, bytes):
            keys.append(value.decode("utf-8", "replace"))
        elif number == 2 and isinstance(value, bytes):
            text = None
            for n, _, v in fields(value):
                if n == 8 and isinstance(v, bytes):
                    text = v.decode("utf-8", "replace")
            values.append(text)
    for key, text in zip(keys, values):  # noqa: B905 - a short list is a damaged set, read what pairs up
        if key in UNIT_KEYS and text:
            return text
    return ""


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    levels = msg.topic.split("/")
    if len(levels) < 4 or levels[0] != "spBv1.0":
        return Parsed(outcome="ignored")
    group, kind, edge = levels[1], levels[2], levels[3]
    device = "/".join(levels[4:])
    b = Builder(msg, rule)
    base = b.base
    base["sparkplug.group_id"] = group
    base["sparkplug.edge_node_id"] = edge
    if device:
        base["sparkplug.device_id"] = device
    base["device.id"] = device or edge
    if kind in ("NDEATH", "DDEATH"):
        b.number(kind, "device.online", 0, "1", state=True)
        return Parsed(tuple(b.points), (), "availability")
    if kind not in ("NBIRTH", "DBIRTH", "NDATA", "DDATA"):
        return Parsed(outcome="ignored")
    state = meta.sparkplug
    try:
        payload_time: int | None = None
        seq: int | None = None
        metrics: list[Metric] = []
        for number, _, value in fields(msg.payload):
            if number == 1 and isinstance(value, int):
                payload_time = value
            elif number == 2 and isinstance(value, bytes):
                metrics.append(_metric(value))
            elif number == 3 and isinstance(value, int):
                seq = value
    except Bad:
        return Parsed(outcome="not_protobuf")
    key = (group, edge, device)
    birth = kind.endswith("BIRTH")
    if birth:
        if len(state.aliases) >= MAX_NODES and key not in state.aliases:
            oldest = next(iter(state.aliases))
            state.aliases.pop(oldest)
            state.names.pop(oldest, None)
        born = state.aliases[key] = {}
        named = state.names[key] = {}
        b.number(kind, "device.online", 1, "1", state=True)
    else:
        born = state.aliases.get(key, {})
        named = state.names.get(key, {})
    if seq is not None:
        node = (group, edge)
        last = state.seq.get(node)
        if last is not None and not birth and seq != (last + 1) % 256:
            b.reject("seq_gap")
        if len(state.seq) < MAX_NODES or node in state.seq:
            state.seq[node] = seq
    for m in metrics:
        if birth and m.name and len(named) < MAX_ALIASES:
            named[m.name] = (m.datatype, m.unit)
            if m.alias is not None:
                born[m.alias] = (m.name, m.datatype, m.unit)
        name = m.name
        if name is None and m.alias is not None and m.alias in born:
            name, datatype, unit = born[m.alias]
            m.datatype, m.unit = m.datatype or datatype, m.unit or unit
        elif name is not None and name in named:
            datatype, unit = named[name]
            m.datatype, m.unit = m.datatype or datatype, m.unit or unit
        if name is None:
            b.reject("unknown_alias")
            continue
        if m.is_null or m.value is None:
            continue
        when = m.timestamp if m.timestamp is not None else payload_time
        time_ns = None
        if when is not None and rule.cfg.time == "auto":
            stamp = epoch_ns(when, "ms")
            time_ns = stamp if isinstance(stamp, int) else None
        _add(b, rule, name, m.datatype, m, time_ns)
    return b.result("no_reading")


def _add(b: Builder, rule: Rule, name: str, datatype: int, m: Metric, time_ns: int | None) -> None:
    metric = rule.name(name.replace("/", "."))
    value = m.value
    if value is None:
        return
    extra: dict[str, AttrValue] | None = None
    if isinstance(value, str):
        if datatype in (STRING, TEXT) or m.value_field == 15:
            b.log(name, value, extra, time_ns)
        return
    if isinstance(value, bool):
        b.number(name, metric, value, "1", time_ns=time_ns, state=True)
        return
    if isinstance(value, int) and m.value_field in (10, 11):
        bits = SIGNED_BITS.get(datatype)
        if bits is not None:
            value = _signed(value, bits)
        elif datatype == BOOLEAN:
            b.number(name, metric, bool(value), "1", time_ns=time_ns, state=True)
            return
        elif datatype == DATETIME:
            return  # a time, not a reading
        elif value > INT64_MAX:
            b.reject("number_range")
            return
    b.number(name, metric, value, m.unit, time_ns=time_ns)
