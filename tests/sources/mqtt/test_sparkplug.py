"""Sparkplug B payloads encoded by the real protobuf library (a subset of eclipse/tahu's
sparkplug_b.proto with the same field numbers) and decoded by our hand-written reader."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from tests.sources.mqtt.mqtt_support import make_context, match_points

F = descriptor_pb2.FieldDescriptorProto


def _proto_classes() -> dict[str, Any]:
    fd = descriptor_pb2.FileDescriptorProto(name="sparkplug_b_subset.proto", package="org.eclipse.tahu.protobuf")
    fd.syntax = "proto2"

    def message(name: str, fields: list[tuple[str, int, int, int, str]]) -> None:
        m = fd.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("PropertyValue", [("type", 1, F.TYPE_UINT32, opt, ""), ("string_value", 8, F.TYPE_STRING, opt, "")])
    message("PropertySet", [
        ("keys", 1, F.TYPE_STRING, rep, ""),
        ("values", 2, F.TYPE_MESSAGE, rep, ".org.eclipse.tahu.protobuf.PropertyValue"),
    ])
    message("Metric", [
        ("name", 1, F.TYPE_STRING, opt, ""), ("alias", 2, F.TYPE_UINT64, opt, ""),
        ("timestamp", 3, F.TYPE_UINT64, opt, ""), ("datatype", 4, F.TYPE_UINT32, opt, ""),
        ("is_historical", 5, F.TYPE_BOOL, opt, ""), ("is_null", 7, F.TYPE_BOOL, opt, ""),
        ("properties", 9, F.TYPE_MESSAGE, opt, ".org.eclipse.tahu.protobuf.PropertySet"),
        ("int_value", 10, F.TYPE_UINT32, opt, ""), ("long_value", 11, F.TYPE_UINT64, opt, ""),
        ("float_value", 12, F.TYPE_FLOAT, opt, ""), ("double_value", 13, F.TYPE_DOUBLE, opt, ""),
        ("boolean_value", 14, F.TYPE_BOOL, opt, ""), ("string_value", 15, F.TYPE_STRING, opt, ""),
    ])
    message("Payload", [
        ("timestamp", 1, F.TYPE_UINT64, opt, ""),
        ("metrics", 2, F.TYPE_MESSAGE, rep, ".org.eclipse.tahu.protobuf.Metric"),
        ("seq", 3, F.TYPE_UINT64, opt, ""), ("uuid", 4, F.TYPE_STRING, opt, ""), ("body", 5, F.TYPE_BYTES, opt, ""),
    ])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"org.eclipse.tahu.protobuf.{n}"))
            for n in ("Payload", "Metric")}


CLASSES = _proto_classes()
T0 = 1732611600000  # ms
NODE = {"sparkplug.group_id": "plant1", "sparkplug.edge_node_id": "edge7", "device.id": "edge7"}


def payload(seq: int, metrics: list[dict[str, Any]], timestamp: int = T0) -> bytes:
    p = CLASSES["Payload"](timestamp=timestamp, seq=seq)
    for spec in metrics:
        spec = dict(spec)
        unit = spec.pop("unit", None)
        m = p.metrics.add(**spec)
        if unit is not None:
            m.properties.keys.append("engUnit")
            m.properties.values.add(type=12, string_value=unit)
    return bytes(p.SerializeToString())


@pytest.fixture
def source() -> MqttSource:
    cfg = MqttConfig(subscribe=(SubscribeConfig(topic="spBv1.0/#", format="sparkplug"),))
    return MqttSource(cfg, make_context())


def test_birth_then_alias_only_data_with_signed_ints_units_and_times(source: MqttSource) -> None:
    birth = payload(0, [
        {"name": "Inputs/Temperature", "alias": 1, "datatype": 9, "float_value": 21.5, "unit": "°C"},
        {"name": "Counter", "alias": 2, "datatype": 2, "int_value": 4294967209},  # Int16 -87, sign-extended
        {"name": "Running", "alias": 3, "datatype": 11, "boolean_value": True},
        {"name": "Mode", "alias": 4, "datatype": 12, "string_value": "auto"},
        {"name": "Energy", "alias": 5, "datatype": 10, "double_value": 1.5, "unit": "kWh", "timestamp": T0 - 1000},
    ])
    parsed = source.handle("spBv1.0/plant1/NBIRTH/edge7", birth)
    assert parsed.outcome == "ok"
    t = T0 * 10**6
    problems = match_points([
        {"name": "device.online", "value": 1, "unit": "1", "attributes": NODE},
        {"name": "sparkplug.Inputs.Temperature", "value": 21.5, "unit": "Cel", "time_ns": t, "attributes": NODE},
        {"name": "sparkplug.Counter", "value": -87, "unit": "1", "time_ns": t, "attributes": NODE},
        {"name": "sparkplug.Running", "value": 1, "unit": "1", "time_ns": t, "attributes": NODE},
        {"name": "sparkplug.Energy", "value": 5.4e6, "unit": "J", "time_ns": t - 10**9, "attributes": NODE},
    ], list(parsed.points))
    assert not problems, problems
    assert [(r.body, dict(r.attributes)["mqtt.key"]) for r in parsed.logs] == [("auto", "Mode")]

    data = payload(1, [
        {"alias": 1, "float_value": 22.25},
        {"alias": 2, "int_value": 0xFFA9},  # Int16 -87 without sign extension
        {"alias": 9, "int_value": 1},  # never born
        {"name": "Counter", "int_value": 5},
    ], timestamp=T0 + 1000)
    parsed = source.handle("spBv1.0/plant1/NDATA/edge7", data)
    assert parsed.outcome == "unknown_alias"
    problems = match_points([
        {"name": "sparkplug.Inputs.Temperature", "value": 22.25, "unit": "Cel", "time_ns": t + 10**9,
         "attributes": NODE},
        {"name": "sparkplug.Counter", "value": -87, "unit": "1", "time_ns": t + 10**9, "attributes": NODE},
        {"name": "sparkplug.Counter", "value": 5, "unit": "1", "time_ns": t + 10**9, "attributes": NODE},
    ], list(parsed.points))
    assert not problems, problems

    gap = source.handle("spBv1.0/plant1/NDATA/edge7", payload(5, [{"alias": 1, "float_value": 23.0}]))
    assert gap.outcome == "seq_gap" and [p.value for p in gap.points] == [23.0]


def test_device_birth_death_nulls_and_ranges(source: MqttSource) -> None:
    dev = {"sparkplug.group_id": "g", "sparkplug.edge_node_id": "e", "sparkplug.device_id": "pump/1",
           "device.id": "pump/1"}
    birth = payload(3, [
        {"name": "Level", "alias": 1, "datatype": 3, "int_value": 0xFFFFFFFF},  # Int32 -1
        {"name": "Big", "alias": 2, "datatype": 8, "long_value": 2**64 - 1},  # UInt64 past int64
        {"name": "Offline", "alias": 3, "datatype": 10, "is_null": True},
        {"name": "U32", "alias": 4, "datatype": 7, "long_value": 4000000000},  # UInt32 in long_value
    ])
    parsed = source.handle("spBv1.0/g/DBIRTH/e/pump/1", birth)
    assert parsed.outcome == "number_range"
    problems = match_points([
        {"name": "device.online", "value": 1, "unit": "1", "attributes": dev},
        {"name": "sparkplug.Level", "value": -1, "unit": "1", "time_ns": T0 * 10**6, "attributes": dev},
        {"name": "sparkplug.U32", "value": 4000000000, "unit": "1", "time_ns": T0 * 10**6, "attributes": dev},
    ], list(parsed.points))
    assert not problems, problems
    death = source.handle("spBv1.0/g/DDEATH/e/pump/1", payload(4, []))
    assert death.outcome == "availability" and [p.value for p in death.points] == [0]


@pytest.mark.parametrize("raw", [b"\xff\xff\xff", b"\x12\x50abc", b"\x0b", bytes(range(256))])
def test_damaged_protobuf_is_a_counted_reject(source: MqttSource, raw: bytes) -> None:
    assert source.handle("spBv1.0/g/NDATA/e", raw).outcome == "not_protobuf"


def test_commands_and_state_are_ignored(source: MqttSource) -> None:
    assert source.handle("spBv1.0/g/NCMD/e", payload(0, [])).outcome == "ignored"
    assert source.handle("spBv1.0/STATE/host1", b'{"online":true}').outcome == "ignored"
