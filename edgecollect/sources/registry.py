"""The one table of source kinds, read by config (which keys `[sources.*]` has), configdoc (what the
reference shows) and runtime (what it starts).

A kind is one line: where its config dataclass and its source class are, as "module:Class"
strings, so nothing of a kind (its module, its library) is imported until a config names it. A
kind is either an array (`[[sources.mqtt]]`, any number, each with a `name`) or a single table
(`[sources.host]`, always there with its defaults, started when its `wanted` rule says so).

Identity: an array source is `<kind>.<name>`: its counters' `source` attribute, its status entry,
the processors' source globs and (MQTT) its default client id. `name` is optional where the kind's
config has a `default_name()` that is stable when the file's tables are reordered (derived from
the device: the serial port, the broker and topics). Two sources with one name are a config error.

Must never import a source module at its own import; stdlib and configtypes only.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from edgecollect.configtypes import FieldError

NAME_RULE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
NAME_EXPECTED = "a short name: letters, digits, _ . - (at most 64), starting with a letter or digit"


class Runnable(Protocol):
    def run(self) -> None: ...


@dataclass(frozen=True, slots=True)
class SourceKind:
    kind: str  # the key under [sources]
    config: str  # "module:Class" of its config dataclass
    source: str  # "module:Class" of the source: Class(cfg, ctx).run() on its own thread
    intro: str  # what configdoc says above its table
    array: bool = True  # [[sources.<kind>]]: any number; else one [sources.<kind>] table
    wanted: Callable[[Any], bool] | None = None  # single tables: whether the config starts it

    def config_class(self) -> type:
        found: type = _load(self.config)
        return found

    def source_class(self) -> Callable[[Any, Any], Runnable]:
        found: Callable[[Any, Any], Runnable] = _load(self.source)
        return found


def _load(where: str) -> Any:
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


_ARRAY_INTRO = ("Any number of {kind} sources, each an entry [[sources.{kind}]]; every source writes into a ring "
                "of its own.")

# Single tables first, in the order the reference shows them, then the arrays.
KINDS: dict[str, SourceKind] = {}


def register(kind: SourceKind) -> None:
    """Add a kind (the lines below; a test may add a toy one). A kind registered twice is a bug."""
    if kind.kind in KINDS and KINDS[kind.kind] != kind:
        raise ValueError(f"source kind {kind.kind!r} is registered twice")
    KINDS[kind.kind] = kind


def unregister(kind: str) -> None:
    KINDS.pop(kind, None)


register(SourceKind("host", "edgecollect.sources.hostconfig:HostConfig", "edgecollect.sources.host:HostSource",
                    "Metrics of the gateway itself.", array=False, wanted=lambda cfg: bool(cfg.enabled)))
register(SourceKind("sysfs", "edgecollect.sources.sysfs.config:SysfsConfig",
                    "edgecollect.sources.sysfs.source:SysfsSource",
                    "Sensors the Linux kernel exposes under /sys: 1-Wire, IIO and hwmon.",
                    array=False, wanted=lambda cfg: bool(cfg.wanted())))
register(SourceKind("mqtt", "edgecollect.sources.mqtt.config:MqttConfig", "edgecollect.sources.mqtt:MqttSource",
                    _ARRAY_INTRO.format(kind="mqtt")))
register(SourceKind("serial", "edgecollect.sources.serial.config:SerialConfig",
                    "edgecollect.sources.serial:SerialSource", _ARRAY_INTRO.format(kind="serial")))
register(SourceKind("modbus", "edgecollect.sources.modbus.config:ModbusConfig",
                    "edgecollect.sources.modbus.source:ModbusSource", _ARRAY_INTRO.format(kind="modbus")))


# -- names ---------------------------------------------------------------------------------------


def check_name(name: str) -> None:
    """For a config's `__post_init__`: an empty name (the default) or a valid one."""
    if name and not NAME_RULE.match(name):
        raise FieldError("name", NAME_EXPECTED)


def slug(text: str, limit: int = 64) -> str:
    """`text` as a name: runs of other characters become "-", at most `limit` characters."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "source"
    return cleaned[:limit] if cleaned[0].isalnum() else ("s" + cleaned)[:limit]


def digest(parts: Iterable[str], length: int = 8) -> str:
    """A short stable hash of `parts` (order-free): two configs that differ only in order agree."""
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:length]


def source_name(cfg: object) -> str:
    """An array source's name: its `name` key, else its config's stable `default_name()`."""
    name = str(getattr(cfg, "name", "") or "")
    if name:
        return name
    default = getattr(cfg, "default_name", None)
    if default is None:
        raise FieldError("name", "a name (this kind of source has no default)")
    return str(default())


def instances(sources: Any) -> Iterator[tuple[SourceKind, str, Any]]:
    """Every configured source of a SourcesConfig as (kind, instance name, config), in table order:
    arrays as "<kind>.<name>", single tables by their kind, and only those their rule wants."""
    for kind in KINDS.values():
        configured = sources.get(kind.kind)
        if kind.array:
            for cfg in configured or ():
                yield kind, f"{kind.kind}.{source_name(cfg)}", cfg
        elif configured is not None and (kind.wanted is None or kind.wanted(configured)):
            yield kind, kind.kind, configured
