"""Payload formats: one module per format, each a `parse(msg, rule, meta) -> Parsed` that never raises."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping

from edgecollect.model import Parsed
from edgecollect.sources.mqtt.formats.common import Message, Metadata, Rule

Parser = Callable[[Message, Rule, Metadata], Parsed]

# Format name -> its module in this package. A format's module (and what it imports: Sparkplug's
# protobuf decoder, Home Assistant's discovery tables) loads the first time a subscription names it,
# so a source that reads only JSON does not carry eight other parsers (~1.9 MB on profile C).
_MODULES: dict[str, str] = {
    "plain": "plain", "json": "json", "influx": "influx", "tasmota": "tasmota",
    "zigbee2mqtt": "zigbee2mqtt", "esphome": "esphome", "shelly": "shelly",
    "homeassistant": "homeassistant", "sparkplug": "sparkplug",
}


class _Parsers(Mapping[str, Parser]):
    """Every format's `parse`, each imported on first lookup."""

    def __getitem__(self, name: str) -> Parser:
        module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
        parse: Parser = module.parse
        return parse

    def __iter__(self) -> Iterator[str]:
        return iter(_MODULES)

    def __len__(self) -> int:
        return len(_MODULES)


PARSERS: Mapping[str, Parser] = _Parsers()
# The prefix a format gives keys it has no well-known name for, unless `prefix` is set.
DEFAULT_PREFIXES: dict[str, str] = {
    "plain": "", "json": "", "influx": "", "tasmota": "tasmota", "zigbee2mqtt": "zigbee2mqtt",
    "esphome": "esphome", "shelly": "shelly", "homeassistant": "homeassistant", "sparkplug": "sparkplug",
}

__all__ = ["DEFAULT_PREFIXES", "PARSERS", "Message", "Metadata", "Parser", "Rule"]
