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
from edgecollect.sources.mqtt.formats.common import (
    INT64_MAX,
    Builder,
    Message,
    Metadata,
    Rule,
    decode_text,
    epoch_ns,
)

_TRUE = frozenset({"t", "T", "true", "True", "TRUE"})
_FALSE = frozenset({"f", "F", "false", "False", "FALSE"})
MAX_LINES = 10_000


def _split(text: str, sep: str, quotes: bool = False, maxsplit: int = -1) -> list[str] | None:
    """Split on `sep` outside backslash escapes (and double quotes); None on an open quote."""
    if "\\" not in text and '"' not in text:
        return text.split(sep, maxsplit)
    parts: list[str] = []
    cur: list[str] = []
    i, n, in_quote = 0, len(text), False
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quotes and c == '"':
            in_quote = not in_quote
        elif c == sep and not in_quote and (maxsplit < 0 or len(parts) < maxsplit):
            parts.append("".join(cur))
            cur = []
            i += 1
            continue
        cur.append(c)
        i += 1
    if in_quote:
        return None
    parts.append("".join(cur))
    return parts


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in ',= "\\':
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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


def _line(b: Builder, line: str) -> bool:
    head_rest = _split(line, " ", maxsplit=1)
    if head_rest is None or len(head_rest) != 2:
        return False
    head, rest = head_rest
    sections = _split(rest.strip(), " ", quotes=True)
    if sections is None or not 1 <= len(sections) <= 2:
        return False
    key_parts = _split(head, ",")
    if not key_parts or not key_parts[0]:
        return False
    measurement = _unescape(key_parts[0])
    tags: dict[str, AttrValue] = {}
    for tag in key_parts[1:]:
        kv = _split(tag, "=", maxsplit=1)
        if kv is None or len(kv) != 2 or not kv[0]:
            return False
        tags[_unescape(kv[0])] = _unescape(kv[1])
    time_ns: int | None = None
    if len(sections) == 2:
        stamp = sections[1].strip()
        if not stamp.lstrip("-").isdigit() or len(stamp) > 20:
            return False
        if b.rule.cfg.time == "auto":
            when = epoch_ns(int(stamp), b.rule.cfg.precision)
            if isinstance(when, str):
                b.reject("bad_time")
            else:
                time_ns = when
    fields = _split(sections[0], ",", quotes=True)
    if not fields:
        return False
    for field in fields:
        kv = _split(field, "=", quotes=True, maxsplit=1)
        if kv is None or len(kv) != 2 or not kv[0] or not kv[1]:
            return False
        name, raw = _unescape(kv[0]), kv[1]
        key = f"{measurement}.{name}"
        metric = b.rule.name(key)
        extra = tags or None
        if raw[0] == '"':
            if len(raw) < 2 or raw[-1] != '"':
                return False
            b.log(key, _unescape(raw[1:-1]), extra, time_ns)
        elif raw in _TRUE or raw in _FALSE:
            b.number(key, metric, raw in _TRUE, "1", extra=extra, time_ns=time_ns, state=True)
        elif raw[-1] in "iu":
            digits = raw[:-1]
            if not digits.lstrip("+-").isdigit() or len(digits) > 21:
                return False
            value = int(digits)
            if raw[-1] == "u" and (value < 0 or value > INT64_MAX):
                b.reject("number_range")
                continue
            b.number(key, metric, value, extra=extra, time_ns=time_ns)
        else:
            try:
                number = float(raw)
            except ValueError:
                return False
            b.number(key, metric, number, extra=extra, time_ns=time_ns)
    return True
