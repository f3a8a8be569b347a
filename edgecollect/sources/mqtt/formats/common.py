"""What every payload format shares: the message, the compiled rule, metadata, and the Builder.

A format is a function `parse(msg, rule, meta) -> Parsed` that never raises on input. It adds
readings, states and log records through a `Builder`, which applies in one place the per-key
overrides (units, types, include/exclude), unit conversion, the retained-message policy, value
range checks and reject reasons. `Metadata` is the only state shared between messages (Home
Assistant discovery index, Zigbee2MQTT device list); it is bounded and per source instance.

Outcomes (closed set, counted by the source as `edgecollect.mqtt.messages{outcome}`):
ok, log (text only), metadata, availability, ignored, no_reading, retained_dropped, and the rejects too_large,
not_utf8, not_json, too_deep, not_number, number_range, not_finite, wrong_type, empty, bad_line,
bad_time, not_protobuf, unknown_alias, seq_gap. A message with some good values and a reject is
counted under the reject reason; its good values are kept.
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Union

from edgecollect.model import AttrValue, Kind, LogRecord, Parsed, Point, Series, attrs
from edgecollect.sources.mqtt.config import SubscribeConfig
from edgecollect.sources.mqtt.formats.units import IDENTITY, Conversion, convert
from edgecollect.sources.mqtt.topics import Template, capture_attributes, compile_template

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)
MAX_NAME = 255
MAX_LOG_BODY = 4096
SERIES_CACHE = 8192  # per rule; cleared when full (a cache, not state)
Json = Union[dict[str, "Json"], list["Json"], str, int, float, bool, None]  # noqa: UP007 - recursive alias

# Strings that mean 1 or 0; `[sources.mqtt] states` extends it (keys are compared lower-cased).
BASE_STATES: dict[str, float] = {
    "on": 1, "off": 0, "true": 1, "false": 0, "online": 1, "offline": 0, "open": 1, "closed": 0,
    "yes": 1, "no": 0, "up": 1, "down": 0, "active": 1, "inactive": 0, "detected": 1, "clear": 0,
    "locked": 1, "unlocked": 0, "home": 1, "not_home": 0, "wet": 1, "dry": 0,
}
# Payloads that mean "no reading right now" (ESPHome nan/None, Home Assistant states).
NO_READING = frozenset({"nan", "-nan", "none", "null", "unavailable", "unknown", "n/a", "inf", ""})


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    captures: dict[str, str]
    retained: bool = False
    received_ns: int = 0


@dataclass(slots=True)
class Rule:
    """A compiled `[[sources.mqtt.subscribe]]` entry plus source-wide limits it needs."""

    cfg: SubscribeConfig
    template: Template
    prefix: str
    states: dict[str, float]
    retained: str = "if_recent"
    retained_max_age_ns: int = 300 * 10**9
    max_depth: int = 8
    base_attrs: dict[str, AttrValue] = field(default_factory=dict)
    # Series seen recently, so a steady stream does not rebuild and re-sort attributes per point:
    # message attributes -> (name, unit, kind, extra attributes) -> Series. Two levels, so a message
    # hashes its attributes once, not once per reading; at most SERIES_CACHE series in all.
    series_cache: dict[tuple[tuple[str, AttrValue], ...], dict[tuple[object, ...], Series]] = field(
        default_factory=dict)
    series_cached: int = 0
    per_key: bool = False  # include, exclude, types or units are set: each key is looked up

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.per_key = bool(cfg.include or cfg.exclude or cfg.types or cfg.units)

    @classmethod
    def build(
        cls, cfg: SubscribeConfig, default_prefix: str, states: dict[str, float], retained: str,
        retained_max_age_s: float, max_depth: int,
    ) -> Rule:
        table = {k: float(v) for k, v in BASE_STATES.items()}
        table.update({k.lower(): float(v) for k, v in states.items()})
        prefix = cfg.prefix if cfg.prefix else default_prefix
        return cls(
            cfg, compile_template(cfg.topic), prefix, table, retained, int(retained_max_age_s * 1e9),
            max_depth, dict(cfg.attributes),
        )

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key


@dataclass(frozen=True, slots=True)
class Entity:
    """What a Home Assistant discovery config (or Z2M expose) says about one value."""

    unit: str = ""
    device_class: str = ""
    state_class: str = ""
    unique_id: str = ""
    device_id: str = ""
    component: str = ""
    value_path: tuple[str, ...] | None = ()  # () = the whole payload; None = unsupported template


@dataclass
class Z2mDevice:
    ieee: str
    model: str = ""
    vendor: str = ""
    units: dict[str, str] = field(default_factory=dict)


@dataclass
class SparkplugState:
    """Alias maps from BIRTH messages per (group, edge node, device), last seq per edge node."""

    # (group, edge, device) -> alias -> (name, datatype, unit); "" device for the node itself
    aliases: dict[tuple[str, str, str], dict[int, tuple[str, int, str]]] = field(default_factory=dict)
    # (group, edge, device) -> name -> (datatype, unit), for DATA that names its metrics
    names: dict[tuple[str, str, str], dict[str, tuple[int, str]]] = field(default_factory=dict)
    seq: dict[tuple[str, str], int] = field(default_factory=dict)


@dataclass
class Metadata:
    """Bounded side-channel knowledge, fed by retained metadata topics."""

    max_entries: int = 10_000
    entities: dict[str, Entity] = field(default_factory=dict)  # state topic -> entity
    config_topics: dict[str, str] = field(default_factory=dict)  # discovery topic -> state topic
    z2m: dict[str, Z2mDevice] = field(default_factory=dict)  # friendly name -> device
    sparkplug: SparkplugState = field(default_factory=SparkplugState)

    def full(self, table: dict[str, Entity] | dict[str, str] | dict[str, Z2mDevice]) -> bool:
        return len(table) >= self.max_entries


class Builder:
    """Collects one message's points and logs, applying the rule's overrides and policies."""

    __slots__ = ("_base", "_series", "logs", "msg", "outcome", "points", "rule")

    def __init__(self, msg: Message, rule: Rule) -> None:
        self.msg = msg
        self.rule = rule
        self.points: list[Point] = []
        self.logs: list[LogRecord] = []
        self.outcome = ""
        base: dict[str, AttrValue] = dict(rule.base_attrs)
        base.update(capture_attributes(msg.captures))
        self._base = base
        self._series: dict[tuple[object, ...], Series] | None = None  # the cache for these attributes

    @property
    def base(self) -> dict[str, AttrValue]:
        """The attributes every point of this message gets; formats may add to it (e.g. device.id)."""
        self._series = None
        return self._base

    def reject(self, reason: str) -> None:
        if not self.outcome:
            self.outcome = reason

    def wanted(self, key: str) -> bool:
        cfg = self.rule.cfg
        if not cfg.include and not cfg.exclude:
            return True
        if cfg.include and not any(fnmatch.fnmatchcase(key, p) for p in cfg.include):
            return False
        return not (cfg.exclude and any(fnmatch.fnmatchcase(key, p) for p in cfg.exclude))

    def number(
        self, key: str, name: str, value: int | float | bool, unit: str = "", *,
        kind: Kind = "gauge", extra: dict[str, AttrValue] | None = None, time_ns: int | None = None,
        state: bool = False, start_time_ns: int | None = None,
    ) -> None:
        """A numeric reading (or a 0/1 state when `state`) for `key`, converted to UCUM.

        `start_time_ns`: when the device began counting (a cumulative total's reset time), if the
        payload says; otherwise the series starts at its first point (sources/base.py)."""
        override = None
        if self.rule.per_key:
            cfg = self.rule.cfg
            if (cfg.include or cfg.exclude) and not self.wanted(key):
                return
            override = cfg.types.get(key) if cfg.types else None
            if override is not None:
                if override == "ignore":
                    return
                if override in ("gauge", "cumulative", "delta", "updown"):
                    kind = override
                elif override == "state":
                    state = True
                elif override == "log":
                    self.log(key, str(value), extra, time_ns)
                    return
            if cfg.units and key in cfg.units:
                unit = cfg.units[key]
        conv: Conversion = convert(unit) if unit else IDENTITY
        scaled = conv.scale != 1.0 or conv.offset != 0.0
        if type(value) is not float and isinstance(value, int):  # floats, the common case, skip this
            value = int(value)  # a bool counts as 0 or 1
            if not INT64_MIN <= value <= INT64_MAX:
                self.reject("number_range")
                return
            if scaled:
                value = value * conv.scale + conv.offset
        else:
            if not math.isfinite(value):
                self.reject("not_finite")
                return
            if scaled:
                value = value * conv.scale + conv.offset
                if not math.isfinite(value):
                    self.reject("number_range")
                    return
        if override == "int" and isinstance(value, float):
            if not -9.2e18 < value < 9.2e18:
                self.reject("number_range")
                return
            value = int(value)
        elif override == "float":
            value = float(value)
        if not state and self.msg.retained and not self._keep_reading(time_ns):
            return
        cache = self._series
        if cache is None:
            cache = self._series = self._series_cache()
        cache_key = (name, conv.unit, kind, tuple(extra.items()) if extra else ())
        series = cache.get(cache_key)
        if series is None:
            merged = dict(self._base)
            if extra:
                merged.update(extra)
            series = Series(name[:MAX_NAME], conv.unit, kind, attrs(merged))
            rule = self.rule
            if rule.series_cached >= SERIES_CACHE:
                rule.series_cache.clear()
                rule.series_cached = 0
                cache = self._series = self._series_cache()
            cache[cache_key] = series
            rule.series_cached += 1
        self.points.append(Point(series, value, time_ns, start_time_ns))

    def _series_cache(self) -> dict[tuple[object, ...], Series]:
        """The rule's series cache for this message's attributes (made on first use)."""
        base_key = tuple(self._base.items())
        outer = self.rule.series_cache
        cache = outer.get(base_key)
        if cache is None:
            cache = outer[base_key] = {}
        return cache

    def text(
        self, key: str, name: str, value: str, unit: str = "", *, kind: Kind = "gauge",
        extra: dict[str, AttrValue] | None = None, time_ns: int | None = None, log_other: bool = True,
        start_time_ns: int | None = None,
    ) -> None:
        """A string value: a known state (1/0), a number in quotes, no reading, or a log record."""
        folded = value.strip().lower()
        state = self.rule.states.get(folded)
        if state is not None:
            self.number(key, name, int(state) if state.is_integer() else state, "1", kind=kind, extra=extra,
                        time_ns=time_ns, state=True)
            return
        number = parse_number(value.strip())
        if number is not None:
            self.number(key, name, number, unit, kind=kind, extra=extra, time_ns=time_ns,
                        start_time_ns=start_time_ns)
            return
        if folded in NO_READING:
            if not self.outcome and not self.points:
                self.outcome = "no_reading"
            return
        if log_other and self.wanted(key) and self.rule.cfg.types.get(key) != "ignore":
            self.log(key, value, extra, time_ns)

    def log(
        self, key: str, body: str, extra: dict[str, AttrValue] | None = None, time_ns: int | None = None,
    ) -> None:
        merged = dict(self._base)
        if extra:
            merged.update(extra)
        merged["mqtt.topic"] = self.msg.topic
        if key:
            merged["mqtt.key"] = key
        when = time_ns if time_ns is not None else (self.msg.received_ns or time.time_ns())
        self.logs.append(LogRecord(when, body[:MAX_LOG_BODY], attributes=attrs(merged)))

    def _keep_reading(self, time_ns: int | None) -> bool:
        """Retained readings are old by nature: drop them unless policy and payload time allow."""
        if not self.msg.retained or self.rule.retained == "keep":
            return True
        if self.rule.retained == "if_recent" and time_ns is not None:
            now = self.msg.received_ns or time.time_ns()
            if now - time_ns <= self.rule.retained_max_age_ns:
                return True
        if not self.outcome:
            self.outcome = "retained_dropped"
        return False

    def result(self, empty_outcome: str = "ignored") -> Parsed:
        if self.outcome:
            outcome = self.outcome
            if outcome in ("retained_dropped", "no_reading") and (self.points or self.logs):
                outcome = "ok"
        else:
            outcome = "ok" if self.points else "log" if self.logs else empty_outcome
        return Parsed(tuple(self.points), tuple(self.logs), outcome)


def parse_number(text: str) -> int | float | None:
    """A JSON-ish number from text ("21.5", "+3", "1e3", "100.00"), or None."""
    if not text or len(text) > 40 or text[0] not in "+-.0123456789":
        return None
    try:
        if text.lstrip("+-").isdigit():
            return int(text)
        number = float(text)
    except ValueError:
        return None
    return number


def decode_text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def load_json(payload: bytes) -> tuple[Json, str]:
    """(document, "") or (None, reason) for payloads that are not JSON text."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not_utf8"
    if not text.strip():
        return None, "empty"
    try:
        doc: Json = json.loads(text)
    except RecursionError:
        return None, "too_deep"
    except ValueError:  # includes JSONDecodeError and ints past sys.int_info.str_digits_check_threshold
        return None, "not_json"
    return doc, ""


def load_json_object(payload: bytes) -> tuple[dict[str, Json], str]:
    """A JSON object payload, or ({}, reason): the device presets all expect an object at the top."""
    doc, reason = load_json(payload)
    if reason:
        return {}, reason
    if not isinstance(doc, dict):
        return {}, "wrong_type"
    return doc, ""


Leaf = Union[str, int, float, bool, None]  # noqa: UP007 - runtime alias on 3.10


def flatten(
    doc: Json, max_depth: int, path: str = "", depth: int = 0, channel: int | None = None,
) -> list[tuple[str, Leaf, int | None] | None]:
    """(dotted key, leaf, array index) for each leaf; None once per subtree cut at max_depth."""
    out: list[tuple[str, Leaf, int | None] | None] = []
    _flatten_into(out, doc, max_depth, path, depth, channel)
    return out


def _flatten_into(
    out: list[tuple[str, Leaf, int | None] | None], doc: Json, max_depth: int, path: str, depth: int,
    channel: int | None,
) -> None:
    # A list, not a generator: payloads are bounded by max_payload, and this is the hot path.
    if isinstance(doc, dict):
        if depth >= max_depth:
            out.append(None)
            return
        for key, value in doc.items():
            sub = f"{path}.{key}" if path else key
            if isinstance(value, (dict, list)):
                _flatten_into(out, value, max_depth, sub, depth + 1, channel)
            else:
                out.append((sub, value, channel))
    elif isinstance(doc, list):
        if depth >= max_depth:
            out.append(None)
            return
        for i, value in enumerate(doc):
            if isinstance(value, (dict, list)):
                _flatten_into(out, value, max_depth, path, depth + 1, i)
            else:
                out.append((path, value, i))
    else:
        out.append((path, doc, channel))


def add_json_leaf(b: Builder, key: str, leaf: Leaf, name: str, unit: str = "", kind: Kind = "gauge",
                  extra: dict[str, AttrValue] | None = None, time_ns: int | None = None,
                  log_other: bool = True, start_time_ns: int | None = None) -> None:
    if leaf is None:
        return
    if isinstance(leaf, str):
        b.text(key, name, leaf, unit, kind=kind, extra=extra, time_ns=time_ns, log_other=log_other,
               start_time_ns=start_time_ns)
    elif isinstance(leaf, bool):
        b.number(key, name, leaf, "1", kind=kind, extra=extra, time_ns=time_ns, state=True)
    else:
        b.number(key, name, leaf, unit, kind=kind, extra=extra, time_ns=time_ns, start_time_ns=start_time_ns)


def parse_time(value: Leaf, naive: str) -> int | str | None:
    """Unix ns from an ISO-8601 string or an epoch number; None for receipt time; "bad" if unusable.

    `naive` says what a time without a zone means: "receipt" (ignore it), "utc" or "local".
    """
    if isinstance(value, bool) or value is None:
        return "bad"
    if isinstance(value, (int, float)):
        return epoch_ns(value, "auto")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return "bad"
    if when.tzinfo is None:
        if naive == "receipt":
            return None
        when = when.replace(tzinfo=timezone.utc) if naive == "utc" else when.astimezone()
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


def epoch_ns(value: int | float, precision: str) -> int | str:
    """Epoch seconds/ms/us/ns -> ns; "auto" guesses from magnitude (10 digits s, 13 ms, 16 us, 19 ns)."""
    if not math.isfinite(value) or value < 0:
        return "bad"
    if precision == "auto":
        magnitude = abs(value)
        precision = (
            "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        )
    factor = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[precision]
    ns = value * factor if isinstance(value, int) else round(value * factor)
    if not 0 <= ns <= INT64_MAX:
        return "bad"
    return ns
