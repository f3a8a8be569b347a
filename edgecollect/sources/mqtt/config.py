"""The `[[sources.mqtt]]` config: the broker session and its `[[sources.mqtt.subscribe]]` rules.

Field names are the TOML keys; config.py walks these type hints, so this module is the one place
the keys are defined. Checks that need more than a type live in `__post_init__` and raise
ValueError saying what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal
from urllib.parse import urlsplit

from edgecollect.configtypes import Duration, FieldError, Range, Secret, Size

Format = Literal[
    "plain", "json", "influx", "tasmota", "zigbee2mqtt", "esphome", "shelly", "homeassistant", "sparkplug",
]
FORMATS: tuple[str, ...] = (
    "plain", "json", "influx", "tasmota", "zigbee2mqtt", "esphome", "shelly", "homeassistant", "sparkplug",
)
# Per-key overrides: a metric kind, a value type, or what to do with the key instead of a metric.
TYPES: tuple[str, ...] = ("gauge", "cumulative", "delta", "updown", "int", "float", "state", "log", "ignore")
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
    ca_file: str = ""  # PEM bundle; empty: the system trust store
    cert_file: str = ""  # client certificate (PEM) for mutual TLS
    key_file: str = ""
    insecure: bool = False  # skip hostname and chain checks (lab only)


@dataclass(frozen=True, slots=True)
class SubscribeConfig:
    topic: str  # filter with templates: "tele/{device}/SENSOR", "zigbee2mqtt/{device...}", "+", "#"
    format: Format = "json"
    qos: Annotated[int | None, Range(0, 2)] = None  # None: the source's qos
    prefix: str = ""  # metric-name prefix for keys without a known name; "" = the preset's name
    name: str = ""  # plain: metric name when the topic has no {metric} capture
    units: dict[str, str] = field(default_factory=dict)  # key -> unit as sent ("kWh", "°C"); normalised
    types: dict[str, str] = field(default_factory=dict)  # key -> one of TYPES
    attributes: dict[str, str] = field(default_factory=dict)  # static attributes on every point
    include: tuple[str, ...] = ()  # glob allow-list of keys (empty: all)
    exclude: tuple[str, ...] = ()  # glob deny-list of keys, applied after include
    time: Literal["auto", "receipt"] = "auto"  # auto: a payload time that carries a zone wins
    time_key: str = ""  # json: the key holding the reading's time (ISO-8601 or epoch)
    naive_time: Literal["receipt", "utc", "local"] = "receipt"  # payload times without a zone (Tasmota)
    precision: Literal["auto", "s", "ms", "us", "ns"] = "ns"  # influx timestamps
    decimal_comma: bool = False  # plain: "21,5" means 21.5
    strip_unit: bool = False  # plain: "21.5°C" -> 21.5 with unit Cel

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
    server: str = "mqtt://127.0.0.1:1883"  # mqtts:// for TLS (default port 8883)
    client_id: str = ""  # "": edgecollect-<hostname>-<source name>, stable so the session persists
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    qos: Annotated[int, Range(0, 2)] = 1  # default per subscription; >= 1 gives at-least-once into the spool
    username: str = ""
    password: Secret = _NO_SECRET  # env:NAME | file:PATH | literal; never logged
    tls: TlsConfig = field(default_factory=TlsConfig)
    keepalive: Annotated[Duration, Range("1s", "65535s")] = _KEEPALIVE  # MQTT's limit is 65535 s
    connect_timeout: Annotated[Duration, Range("100ms", "5m")] = _CONNECT_TIMEOUT
    reconnect_min: Annotated[Duration, Range("10ms", "1h")] = _RECONNECT_MIN
    reconnect_max: Annotated[Duration, Range("10ms", "1d")] = _RECONNECT_MAX  # backoff ceiling, jittered
    clean_start: bool = False  # False: persistent session, the broker queues QoS>=1 while we are away
    # MQTT 5 only (a 32-bit count of seconds); 3.1.1 sessions live per broker config.
    session_expiry: Annotated[Duration, Range("0s", "49710d")] = _SESSION_EXPIRY
    # MQTT 5 Receive Maximum; also when to ask the batcher for an early flush.
    max_unacked: Annotated[int, Range(1, 65535)] = 1000
    max_payload: Annotated[Size, Range(16, "16MiB")] = _MAX_PAYLOAD  # bigger payloads are rejected (and acked) unparsed
    max_depth: Annotated[int, Range(1, 64)] = 8  # JSON nesting kept when flattening
    max_keys_per_device: Annotated[int, Range(1, 100_000)] = 200  # distinct series per device.id
    max_devices: Annotated[int, Range(1, 1_000_000)] = 10_000  # distinct device.id values tracked by the key cap
    max_series: Annotated[int, Range(1, 1_000_000)] = 20_000  # this source's share of agent.max_series
    retained: Retained = "if_recent"  # readings in retained messages; state and metadata always kept
    # "if_recent": payload time at most this old.
    retained_max_age: Annotated[Duration, Range("1s", "30d")] = _RETAINED_MAX_AGE
    states: dict[str, float] = field(default_factory=dict)  # extra string -> value ("heat" = 1)
    subscribe: tuple[SubscribeConfig, ...] = ()

    def __post_init__(self) -> None:
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
