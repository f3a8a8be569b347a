"""`plain`: the payload is one value as text ("21.4", "ON", "+3", "21,5", "21.5°C").

The metric name comes from a `{metric}` capture, else `name`, else the last topic level, after the
prefix. The unit comes from `units`, else a Home Assistant discovery config for this state topic,
else the text after the number when `strip_unit` is set. Text that is neither a number nor a
known state becomes a log record; `nan`, `None`, `unavailable` and the like mean no reading.
"""

from __future__ import annotations

import re

from edgecollect.model import Parsed
from edgecollect.sources.mqtt.formats.common import Builder, Message, Metadata, Rule, decode_text

_NUMBER_UNIT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\d\s.,+-].{0,15})$")


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    if not msg.payload:
        return Parsed(outcome="empty")  # often a retained-delete
    text = decode_text(msg.payload)
    if text is None:
        return Parsed(outcome="not_utf8")
    text = text.strip()
    cfg = rule.cfg
    key = msg.captures.get("metric") or cfg.name or msg.topic.rsplit("/", 1)[-1]
    entity = meta.entities.get(msg.topic)
    unit = entity.unit if entity is not None else ""
    if cfg.decimal_comma and "," in text and "." not in text:
        text = text.replace(",", ".", 1)
    if cfg.strip_unit:
        m = _NUMBER_UNIT.match(text)
        if m is not None:
            text, unit = m.group(1), unit or m.group(2)
    b = Builder(msg, rule)
    b.text(key, rule.name(key), text, unit)
    return b.result("no_reading")
