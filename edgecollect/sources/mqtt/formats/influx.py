"""`influx`: InfluxDB line protocol, one or more lines per message (Telegraf's MQTT output).

    <measurement>[,<tag>=<value>...] <field>=<value>[,<field>=<value>...] [<timestamp>]

Each field is a point named `<prefix>.<measurement>.<field>` (no prefix: `<measurement>.<field>`),
tags become attributes. Integers (`12i`, `12u`) stay integers, `t/true/f/false` are 1/0, quoted
strings become log records. The timestamp precision is `precision` (default ns; "auto" guesses
from the number of digits). A pure-Python parser, so it runs on armv7 where the C one has no
wheel. A bad line is counted (`bad_line`) and the message's other lines are kept.
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Parsed
from edgecollect.sources.lineprotocol import LineError, parse_line
from edgecollect.sources.mqtt.formats.common import (
    INT64_MAX,
    Builder,
    Message,
    Metadata,
    Rule,
    decode_text,
    epoch_ns,
)

MAX_LINES = 10_000


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    text = decode_text(msg.payload)
    if text is None:
        return Parsed(outcome="not_utf8")
    b = Builder(msg, rule)
    lines = [line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return Parsed(outcome="empty")
    for line in lines[:MAX_LINES]:
        if not _line(b, line.strip()):
            b.reject("bad_line")
    return b.result("no_reading")


def _line(b: Builder, text: str) -> bool:
    try:
        line = parse_line(text)
    except LineError:
        return False
    tags: dict[str, AttrValue] = dict(line.tags)
    time_ns: int | None = None
    if line.timestamp is not None and b.rule.cfg.time == "auto":
        when = epoch_ns(line.timestamp, b.rule.cfg.precision)
        if isinstance(when, str):
            b.reject("bad_time")
        else:
            time_ns = when
    extra = tags or None
    for field in line.fields:
        key = f"{line.measurement}.{field.key}"
        metric = b.rule.name(key)
        if isinstance(field.value, str):
            b.log(key, field.value, extra, time_ns)
        elif field.kind == "bool":
            b.number(key, metric, bool(field.value), "1", extra=extra, time_ns=time_ns, state=True)
        elif field.kind == "uint" and field.value > INT64_MAX:
            b.reject("number_range")
        else:
            b.number(key, metric, field.value, extra=extra, time_ns=time_ns)
    return True
