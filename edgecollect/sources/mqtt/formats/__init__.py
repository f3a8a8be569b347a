"""Payload formats: one module per format, each a `parse(msg, rule, meta) -> Parsed` that never raises."""

from __future__ import annotations

from collections.abc import Callable

from edgecollect.model import Parsed
from edgecollect.sources.mqtt.formats import (
    esphome,
    homeassistant,
    influx,
    plain,
    shelly,
    sparkplug,
    tasmota,
    zigbee2mqtt,
)
from edgecollect.sources.mqtt.formats import json as json_format
from edgecollect.sources.mqtt.formats.common import Message, Metadata, Rule

Parser = Callable[[Message, Rule, Metadata], Parsed]

PARSERS: dict[str, Parser] = {
    "plain": plain.parse,
    "json": json_format.parse,
    "influx": influx.parse,
    "tasmota": tasmota.parse,
    "zigbee2mqtt": zigbee2mqtt.parse,
    "esphome": esphome.parse,
    "shelly": shelly.parse,
    "homeassistant": homeassistant.parse,
    "sparkplug": sparkplug.parse,
}
# The prefix a format gives keys it has no well-known name for, unless `prefix` is set.
DEFAULT_PREFIXES: dict[str, str] = {
    "plain": "", "json": "", "influx": "", "tasmota": "tasmota", "zigbee2mqtt": "zigbee2mqtt",
    "esphome": "esphome", "shelly": "shelly", "homeassistant": "homeassistant", "sparkplug": "sparkplug",
}

__all__ = ["DEFAULT_PREFIXES", "PARSERS", "Message", "Metadata", "Parser", "Rule"]
