"""The `[[sources.mqtt]]` config: the broker session and its `[[sources.mqtt.subscribe]]` rules.

Field names are the TOML keys; config.py walks these type hints, so this module is the one place
the keys are defined. Checks that need more than a type live in `__post_init__` and raise
ValueError saying what was expected.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from edgecollect.configtypes import Duration, FieldError, Key, KeyDocs, Range, Secret, Size
from edgecollect.sources.registry import check_name, digest, slug

Format = Literal[
    "plain", "json", "influx", "tasmota", "zigbee2mqtt", "esphome", "shelly", "homeassistant", "sparkplug",
]
# Per-key overrides: a metric kind, a value type, or what to do with the key instead of a metric.
TypeOverride = Literal["gauge", "cumulative", "delta", "updown", "int", "float", "state", "log", "ignore"]
TYPES: tuple[str, ...] = typing.get_args(TypeOverride)
Retained = Literal["drop", "if_recent", "keep"]

# NewType defaults as constants (a call in a dataclass default reads as a shared mutable to linters).
_NO_SECRET = Secret("")
_KEEPALIVE = Duration(60.0)
_CONNECT_TIMEOUT = Duration(10.0)
_RECONNECT_MIN = Duration(1.0)
_RECONNECT_MAX = Duration(30.0)
_SESSION_EXPIRY = Duration(7 * 86400.0)
_MAX_PAYLOAD = Size(256 * 1024)
_RETAINED_MAX_AGE = Duration(300.0)
_TEMPLATE_SEGMENT = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_.]*)(\.\.\.)?\}$")


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure: bool = False

    KEY_DOCS: ClassVar[KeyDocs] = {
        "ca_file": "PEM bundle of the CAs that may sign the broker's certificate; empty: the system's.",
        "cert_file": "Client certificate (PEM), for brokers that ask for mutual TLS.",
        "key_file": "The private key (PEM) of cert_file.",
        "insecure": "Accept any broker certificate (no hostname or chain check); for a lab only. The "
        "connection is still encrypted.",
    }


@dataclass(frozen=True, slots=True)
class SubscribeConfig:
    topic: str
    format: Format = "json"
    qos: Annotated[int | None, Range(0, 2)] = None
    prefix: str = ""
    name: str = ""
    units: dict[str, str] = field(default_factory=dict)
    types: dict[str, TypeOverride] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    time: Literal["auto", "receipt"] = "auto"
    time_key: str = ""
    naive_time: Literal["receipt", "utc", "local"] = "receipt"
    precision: Literal["auto", "s", "ms", "us", "ns"] = "ns"
    decimal_comma: bool = False
    strip_unit: bool = False

    KEY_DOCS: ClassVar[KeyDocs] = {
        "topic": Key("Topic filter to subscribe to, with {name} captures that become attributes: "
        '"tele/{device}/SENSOR", "zigbee2mqtt/{device...}" ({x...} spans levels), or plain "+" and "#".',
        example='"tele/{device}/SENSOR"'),
        "format": Key("How payloads on this topic are read; each preset knows its devices' names and units.",
        choices={
            "plain": "the payload is one number (or a state word); the metric name comes from {metric} or name",
            "json": "a JSON object; every number becomes a metric named after its (flattened) key",
            "influx": "InfluxDB line protocol, one or more lines",
            "tasmota": "Tasmota's tele/<topic>/SENSOR, STATE, LWT and stat/<topic>/POWER messages",
            "zigbee2mqtt": "Zigbee2MQTT device messages and its bridge/devices list",
            "esphome": "ESPHome's MQTT component: <node>/<component>/<id>/state and <node>/status",
            "shelly": "Shelly Gen2+ JSON-RPC notifications and status topics",
            "homeassistant": "Home Assistant MQTT discovery and the state topics it announces",
            "sparkplug": "Sparkplug B (protobuf) births and data messages"}),
        "qos": Key("MQTT quality of service for this subscription. Unset: the source's qos.", example="1"),
        "prefix": 'Metric-name prefix for keys without a known name; empty: the preset\'s own ("tasmota.").',
        "name": "plain: the metric name when the topic has no {metric} capture.",
        "units": 'Unit of a key as the device sends it ({ energy = "kWh", temp = "°C" }); values are converted '
        "to the standard unit.",
        "types": Key('Treat a key differently from what its value suggests: { relay = "state" }.',
        choices={
            "gauge": "a reading at a moment (temperature)",
            "cumulative": "a counter that only grows from a start (energy total)",
            "delta": "an amount since the previous message",
            "updown": "a sum that can grow and shrink (items in a queue)",
            "int": "keep the value as a whole number",
            "float": "keep the value as a decimal number",
            "state": "an on/off or named state (1/0, or a value from states)",
            "log": "a text value: keep it as a log record, not a metric",
            "ignore": "drop the key"}),
        "attributes": 'Fixed attributes added to every point from this topic: { room = "kitchen" }.',
        "include": 'Keep only keys matching one of these globs (["temp*", "hum"]); empty: all keys.',
        "exclude": "Drop keys matching one of these globs, applied after include.",
        "time": Key("Which time a reading gets.", choices={
            "auto": "the payload's own time when it carries a zone (or naive_time says how to read it), else "
            "the time of receipt",
            "receipt": "always the time the agent received the message"}),
        "time_key": "json: the key holding the reading's time (ISO-8601 or epoch seconds); empty: none.",
        "naive_time": Key("What a payload time without a zone (Tasmota's) means.", choices={
            "receipt": "nothing: use the time of receipt",
            "utc": "it is UTC",
            "local": "it is the gateway's local time"}),
        "precision": Key("influx: the unit of the timestamps in the lines.", choices={
            "auto": "guess from the number of digits",
            "s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}),
        "decimal_comma": 'plain: "21,5" means 21.5.',
        "strip_unit": 'plain: "21.5°C" is read as 21.5 in Cel (the unit is taken from the text).',
    }

    def __post_init__(self) -> None:
        if not self.topic:
            raise FieldError("topic", "a topic filter or template such as \"tele/{device}/SENSOR\"")
        levels = self.topic.split("/")
        for i, level in enumerate(levels):
            if "{" in level or "}" in level:
                if not _TEMPLATE_SEGMENT.match(level):
                    raise FieldError("topic", f"a template level like {{device}} or {{device...}}, not {level!r}")
            elif level == "#":
                if i != len(levels) - 1:
                    raise FieldError("topic", "'#' only as the last topic level")
            elif "#" in level or ("+" in level and level != "+"):
                raise FieldError("topic", f"'+' and '#' only as whole topic levels, not {level!r}")
        if self.qos is not None and self.qos not in (0, 1, 2):
            raise FieldError("qos", "qos 0, 1 or 2")
        for key, kind in self.types.items():
            if kind not in TYPES:
                raise FieldError(("types", key), f"one of {', '.join(TYPES)}")


@dataclass(frozen=True, slots=True)
class MqttConfig:
    name: str = ""
    server: str = "mqtt://127.0.0.1:1883"
    client_id: str = ""
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    qos: Annotated[int, Range(0, 2)] = 1
    username: str = ""
    password: Secret = _NO_SECRET
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: Annotated[Duration, Range("1s", "65535s")] = _KEEPALIVE
    connect_timeout: Annotated[Duration, Range("100ms", "5m")] = _CONNECT_TIMEOUT
    reconnect_min: Annotated[Duration, Range("10ms", "1h")] = _RECONNECT_MIN
    reconnect_max: Annotated[Duration, Range("10ms", "1d")] = _RECONNECT_MAX
    clean_start: bool = False
    session_expiry: Annotated[Duration, Range("0s", "49710d")] = _SESSION_EXPIRY  # MQTT 5: 32-bit seconds
    max_unacked: Annotated[int, Range(1, 65535)] = 1000
    max_payload: Annotated[Size, Range(16, "16MiB")] = _MAX_PAYLOAD
    max_depth: Annotated[int, Range(1, 64)] = 8
    max_keys_per_device: Annotated[int, Range(1, 100_000)] = 200
    max_devices: Annotated[int, Range(1, 1_000_000)] = 10_000
    max_series: Annotated[int, Range(1, 1_000_000)] = 20_000
    retained: Retained = "if_recent"
    retained_max_age: Annotated[Duration, Range("1s", "30d")] = _RETAINED_MAX_AGE
    states: dict[str, float] = field(default_factory=dict)
    subscribe: tuple[SubscribeConfig, ...] = ()

    KEY_DOCS: ClassVar[KeyDocs] = {
        "tls": "TLS to the broker (with an mqtts:// server): which certificates to trust and show.",
        "subscribe": "What to subscribe to, and how to read it: any number of [[sources.mqtt.subscribe]] "
        "entries under their source.",
        "server": 'The broker: "mqtt://host:1883", or "mqtts://host:8883" for TLS (port 8883 by default).',
        "name": Key("Names this source: its counters and status entry are those of source mqtt.<name>, and "
        "its default client_id is made from it. Letters, digits, _ . -; unique among all sources. Empty: "
        "<host>-<port>-<a hash of the subscribed topics>, which stays the same when the [[sources.mqtt]] "
        "tables are reordered.", example='"barn"'),
        "client_id": "The id this source gives the broker. Empty: edgecollect-<hostname>-mqtt.<name>; it must "
        "stay the same across restarts, or the broker forgets the session and what it queued for us.",
        "protocol": Key("MQTT protocol version.", choices={
            "3.1.1": "MQTT 3.1.1, spoken by every broker",
            "5": "MQTT 5: the broker also learns max_unacked and session_expiry"}),
        "qos": "Default MQTT quality of service of the subscriptions: 0 at most once, 1 or 2 at least once "
        "into the spool (a message is acknowledged once its readings are on disk).",
        "username": "User name to log in with; empty: anonymous.",
        "password": 'Password: "env:NAME" (an environment variable), "file:PATH" (a file\'s content) or the '
        "password itself; never logged.",
        "keepalive": "How often the connection is checked when idle (MQTT allows up to 65535 s).",
        "connect_timeout": "How long one connection attempt may take.",
        "reconnect_min": "First wait before reconnecting after the broker is lost.",
        "reconnect_max": "Longest wait between reconnect attempts (the wait grows, with jitter, up to this).",
        "clean_start": "true: start a new session at every connect, and lose what the broker queued while the "
        "agent was away. false: keep the session (at-least-once across restarts).",
        "session_expiry": "MQTT 5: how long the broker keeps the session (and queues messages) while the agent "
        "is away. With 3.1.1 the broker's own setting decides.",
        "max_unacked": "Messages the broker may send before the agent acknowledges them (MQTT 5 Receive "
        "Maximum); reaching it also makes the agent write its readings to disk early.",
        "max_payload": "Bigger messages are refused unread (counted, and acknowledged so they never loop).",
        "max_depth": "How deep nested JSON objects are followed when turning keys into metric names.",
        "max_keys_per_device": "Most distinct metrics per device; more are refused and counted.",
        "max_devices": "Most distinct devices whose keys are counted against max_keys_per_device.",
        "max_series": "This source's share of agent.max_series.",
        "retained": Key("What to do with readings in retained messages (the broker's last stored value, "
        "which may be old). States and device metadata are always kept.", choices={
            "drop": "ignore them",
            "if_recent": "keep them when their payload time is within retained_max_age",
            "keep": "always keep them"}),
        "retained_max_age": 'With retained = "if_recent": the oldest payload time kept.',
        "states": 'Extra state words and the number each one means: { heat = 1, idle = 0 } (on/off, true/false, '
        "online/offline are known).",
    }

    def __post_init__(self) -> None:
        check_name(self.name)
        # Ranges of single values are declared on the fields (config.py checks them when loading);
        # these are the rules that need more than one value, kept here for direct construction too.
        parts = urlsplit(self.server)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
            raise FieldError("server", 'a server such as "mqtt://host:1883" or "mqtts://host:8883"')
        try:
            _ = parts.port
        except ValueError as exc:
            raise FieldError("server", "a valid port in server") from exc
        if self.qos not in (0, 1, 2):
            raise FieldError("qos", "qos 0, 1 or 2")
        if not 1 <= self.max_unacked <= 65535:
            raise FieldError("max_unacked", "between 1 and 65535 (MQTT Receive Maximum)")
        if self.max_payload < 16:
            raise FieldError("max_payload", "at least 16 bytes")
        if self.max_depth < 1 or self.max_keys_per_device < 1 or self.max_devices < 1:
            raise ValueError("max_depth, max_keys_per_device and max_devices of at least 1")
        if self.reconnect_min <= 0:
            raise FieldError("reconnect_min", "a positive duration")
        if self.reconnect_max < self.reconnect_min:
            raise FieldError("reconnect_max", "at least reconnect_min")
        if self.keepalive < 1:
            raise FieldError("keepalive", "at least 1s")

    def default_name(self) -> str:
        """The broker and what is subscribed there, not the table's place in the file."""
        return slug(f"{self.host}-{self.port}-{digest(sub.topic for sub in self.subscribe)}")

    @property
    def tls_enabled(self) -> bool:
        return urlsplit(self.server).scheme in ("mqtts", "ssl")

    @property
    def host(self) -> str:
        return urlsplit(self.server).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        port = urlsplit(self.server).port
        if port is not None:
            return port
        return 8883 if self.tls_enabled else 1883
