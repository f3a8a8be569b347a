"""Hypothesis fuzzing of every parser: MQTT payload formats, serial framings, the config loader.

A parser returns an outcome for any input; any exception escaping it is a failure (the config
loader may raise ConfigError, and only that). CI runs a fixed budget, derandomized, so a failure
replays; `EDGECOLLECT_FULL=1` runs a long randomized search (`EDGECOLLECT_FUZZ_EXAMPLES` to set it).
The MQTT parsers are called directly, not through `MqttSource.handle`, whose catch-all would hide
a parser exception behind a `parser_error` outcome.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecollect.config import loads
from edgecollect.errors import ConfigError
from edgecollect.model import Parsed
from edgecollect.sources.mqtt.config import SubscribeConfig
from edgecollect.sources.mqtt.formats import DEFAULT_PREFIXES, PARSERS, Message, Metadata, Rule
from edgecollect.sources.serial import SerialConfig
from edgecollect.sources.serial.framing import make_parser
from edgecollect.sources.serial.framing.slf1 import crc16
from tests.chaos.harness import FULL
from tests.sources.mqtt.mqtt_support import DATA, payload_of  # the MQTT tests' golden data

EXAMPLES = int(os.environ.get("EDGECOLLECT_FUZZ_EXAMPLES", "20000" if FULL else "300"))
FUZZ = settings(
    max_examples=EXAMPLES, derandomize=not FULL, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)

# -- MQTT payloads -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
KEYS = st.sampled_from(["temp", "Temperature", "ENERGY", "Power", "state", "time", "ts", "Time", "battery",
                        "linkquality", "value", "DS18B20", "sensor", "apower", "params", "id", "src", "",
                        "voltage", "unit_of_measurement", "device_class", "state_topic", "friendly_name"])
shaped_json = st.dictionaries(KEYS, json_values, max_size=8)


def _encode_json(value: object) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


influx_lines = st.lists(
    st.tuples(st.text(max_size=8), st.text(max_size=12), st.text(max_size=12),
              st.sampled_from(["", " 1700000000000000000", " -1", " 99999999999999999999", " x"])),
    min_size=1, max_size=4,
).map(lambda ls: "\n".join(f"{m},{t}={v} {v}=1.5i,f={t}{ts}" for m, t, v, ts in ls).encode())

payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    json_values.map(_encode_json),
    shaped_json.map(_encode_json),
    influx_lines,
    st.sampled_from([b"nan", b"-inf", b"1e999", b"ON", b"  42 ", b"0x1F", b"\xff\xfe", b"{}", b"[]", b"null"]),
)
def _golden_inputs() -> dict[str, list[tuple[Rule, str, bytes]]]:
    """(rule, topic, payload) of every golden message, by the format of the rule that takes it: real
    device payloads on real topics, which the fuzzer then mutates byte by byte."""
    by_format: dict[str, list[tuple[Rule, str, bytes]]] = {}
    for path in sorted((DATA / "golden").glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            subs: list[dict[str, Any]] = [{k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()}
                                          for sub in case["subscribe"]]
            rules = [_rule(SubscribeConfig(**sub)) for sub in subs]
            for message in case["messages"]:
                rule = next((r for r in rules if r.template.match(message["topic"]) is not None), None)
                if rule is not None:
                    by_format.setdefault(rule.cfg.format, []).append((rule, message["topic"], payload_of(message)))
    return by_format


def _rule(cfg: SubscribeConfig) -> Rule:
    return Rule.build(cfg, DEFAULT_PREFIXES.get(cfg.format, ""), {"heat": 1.0}, "if_recent", 300.0, 8)


def _mutate(payload: bytes, edits: list[tuple[int, str, int]]) -> bytes:
    data = bytearray(payload)
    for at, op, byte in edits:
        i = at % (len(data) + 1)
        if op == "flip" and data:
            data[i % len(data)] ^= 1 << (byte % 8)
        elif op == "set" and data:
            data[i % len(data)] = byte
        elif op == "insert":
            data.insert(i, byte)
        elif op == "delete" and data:
            del data[i % len(data)]
        elif op == "truncate":
            del data[i:]
    return bytes(data)


GOLDEN_INPUTS = _golden_inputs()
FALLBACK_TOPICS = ("spBv1.0/plant/DDATA/edge1/dev1", "spBv1.0/plant/NBIRTH/edge1", "spBv1.0/plant/DBIRTH/edge1/dev1",
                   "dev1/sensor/temp", "tele/dev1/SENSOR")
edits = st.lists(st.tuples(st.integers(0, 1 << 16), st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
                           st.integers(0, 255)), max_size=6)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
def test_mqtt_format_never_raises(fmt: str) -> None:
    parse, meta = PARSERS[fmt], Metadata(max_entries=50)
    # A format without golden data yet is still fuzzed, from generated payloads on a catch-all rule.
    catch_all = _rule(SubscribeConfig(topic="#", format=fmt))  # type: ignore[arg-type]
    inputs = GOLDEN_INPUTS.get(fmt) or [(catch_all, t, b"") for t in FALLBACK_TOPICS]
    seen: dict[str, int] = {}

    @FUZZ
    @given(which=st.integers(0, len(inputs) - 1), mutation=edits, other=st.none() | payloads, retained=st.booleans())
    def check(which: int, mutation: list[tuple[int, str, int]], other: bytes | None, retained: bool) -> None:
        rule, topic, golden_payload = inputs[which]
        payload = _mutate(golden_payload if other is None else other, mutation)
        captures = rule.template.match(topic) or {}
        out = parse(Message(topic, payload, captures, retained, time.time_ns()), rule, meta)
        assert isinstance(out, Parsed)
        assert isinstance(out.outcome, str) and out.outcome
        seen[out.outcome] = seen.get(out.outcome, 0) + 1

    check()
    print(f"\n[fuzz] mqtt {fmt}: {sum(seen.values())} payloads, outcomes {dict(sorted(seen.items()))}")
    # Metadata must stay bounded whatever the discovery/device-list topics said.
    assert len(meta.entities) <= 50 and len(meta.z2m) <= 50 and len(meta.config_topics) <= 50


# -- serial framings ---------------------------------------------------------------------------

def _slf1(body: bytes) -> bytes:
    return b"$" + body + b"*%04X" % crc16(body)


slf1_bodies = st.lists(
    st.sampled_from([b"1", b"D", b"I", b"E", b"X", b"esp32", b"0", b"4294967296", b"-1", b"t=21.5", b"x=", b"=1",
                     b"hum=nan", b"a=1e309", b"msg=hi\\,there", b"\xff", b"", b"units=temp:Cel;hum:%"]),
    max_size=8,
).map(lambda parts: b",".join(parts))
def _nmea(talker: bytes, fields: list[str]) -> bytes:
    body = talker + b"," + ",".join(fields).encode()
    check = 0
    for byte in body:
        check ^= byte
    return b"$" + body + b"*%02X" % check


nmea = st.tuples(
    st.sampled_from([b"GPGGA", b"GNRMC", b"GPGSA", b"GPXXX"]),
    st.lists(st.text(alphabet="0123456789.,NSEW-AV", max_size=12), max_size=16),
).map(lambda tf: _nmea(*tf))
kv_lines = st.lists(st.tuples(st.sampled_from(["temp", "hum", "T", "room", "", "a.b"]),
                              st.sampled_from(["21.5", "-3", "1e3", "nan", "", "x", "99999999999999999999"])),
                    max_size=5).map(lambda kv: " ".join(f"{k}={v}" for k, v in kv).encode())
line_protocol = st.tuples(st.sampled_from(["m", "m,tag=a", "m,t=a\\ b", ",x"]), kv_lines,
                          st.sampled_from(["", " 1700000000000000000", " x", " -1"])).map(
    lambda t: t[0].encode() + b" " + t[1].replace(b" ", b",") + t[2].encode())
lines = st.one_of(
    st.binary(max_size=300),
    kv_lines,
    line_protocol,
    st.tuples(st.sampled_from(["21.5", "x", "-0", "1e400"]), st.text(max_size=8)).map(
        lambda t: f"T={t[0]} {t[1]}".encode()),
    slf1_bodies.map(_slf1),
    slf1_bodies.map(lambda b: b"$" + b + b"*ZZZZ"),
    nmea,
    st.text(max_size=120).map(str.encode),
    json_values.map(_encode_json),
    st.lists(st.text(alphabet="abc=,; 0123456789.-", max_size=10), max_size=6).map(lambda x: " ".join(x).encode()),
)
FRAMING_CONFIGS = {
    "slf1": SerialConfig(port="/dev/null", framing="slf1"),
    "nmea": SerialConfig(port="/dev/null", framing="nmea"),
    "csv": SerialConfig(port="/dev/null", framing="csv", header=("temp", "@room", "", "hum")),
    "kv": SerialConfig(port="/dev/null", framing="kv"),
    "jsonl": SerialConfig(port="/dev/null", framing="jsonl"),
    "influx": SerialConfig(port="/dev/null", framing="influx"),
    "regex": SerialConfig(port="/dev/null", framing="regex", pattern=r"T=(?P<temp>\S+) (?P<attr_room>\w*)"),
}


@pytest.mark.parametrize("framing", sorted(FRAMING_CONFIGS))
def test_serial_framing_never_raises(framing: str) -> None:
    parser = make_parser(FRAMING_CONFIGS[framing], lambda name, n: None)
    seen: dict[str, int] = {}

    @FUZZ
    @given(line=lines)
    def check(line: bytes) -> None:
        out = parser.parse(line, time.time_ns())
        assert isinstance(out, Parsed) and out.outcome
        seen[out.outcome] = seen.get(out.outcome, 0) + 1

    check()
    print(f"\n[fuzz] serial {framing}: {sum(seen.values())} lines, outcomes {dict(sorted(seen.items()))}")


# -- config loader -----------------------------------------------------------------------------

toml_scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),  # nan, inf and -inf are TOML as written
    st.booleans().map(lambda b: "true" if b else "false"),
    st.text(max_size=20).map(json.dumps),
    st.sampled_from(['"10s"', '"64MiB"', '"-1s"', '"1e3KB"', '"env:NOPE"', '"file:/nonexistent"', '"drop_oldest"',
                     '"mqtt://127.0.0.1:1"', '"127.0.0.1:x"', '"otap"', '"slf1"', '"regex"', '"(?P<"', "[]", "{}",
                     '["a", 1]', '{ insecure = true }', "1979-05-27T07:32:00Z", '"http://h:1"']),
)
SECTIONS = ["", "[agent]", "[buffer]", "[batch]", "[spool]", "[sources.host]", "[[sources.mqtt]]",
            "[[sources.mqtt.subscribe]]", "[[sources.serial]]", "[upstream]", "[upstream.tls]", "[bogus]"]
TOML_KEYS = ["state_dir", "resource", "max_points", "max_bytes", "overflow", "flush_interval", "max_size", "max_age",
             "when_full", "interval", "enabled", "server", "client_id", "qos", "topic", "format", "port", "baud",
             "framing", "header", "pattern", "endpoint", "protocol", "tls", "headers", "insecure", "ca_file",
             "retry_initial", "retry_max", "rate_limit", "units", "types", "log_level", "clock", "unknown_key"]
toml_docs = st.lists(
    st.tuples(st.sampled_from(SECTIONS), st.lists(st.tuples(st.sampled_from(TOML_KEYS), toml_scalars), max_size=5)),
    max_size=6,
).map(lambda secs: "\n".join(s + "\n" + "\n".join(f"{k} = {v}" for k, v in kv) for s, kv in secs))


def test_config_loader_raises_only_config_error() -> None:
    outcomes = {"valid": 0, "ConfigError": 0}

    @FUZZ
    @given(text=st.one_of(toml_docs, st.text(max_size=300)))
    def check(text: str) -> None:
        try:
            loads(text, "fuzz.toml")
            outcomes["valid"] += 1
        except ConfigError as exc:
            assert str(exc).startswith("fuzz.toml"), f"error without its file name: {exc}"
            outcomes["ConfigError"] += 1

    check()
    print(f"\n[fuzz] config: {outcomes}")
    assert outcomes["valid"] > 0 and outcomes["ConfigError"] > 0, "the generator must reach both outcomes"
