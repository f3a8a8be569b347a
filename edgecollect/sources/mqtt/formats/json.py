"""`json`: any JSON document, flattened.

Objects flatten with `.` (`{"a":{"b":1}}` -> key `a.b`), arrays give one point per index with a
`channel` attribute, booleans and known state strings become 1/0, numbers in strings are numbers,
other strings become log records, null is no reading. A scalar document is one value named like a
plain payload. The metric name is `<prefix>.<key>` (just `<key>` without a prefix). `time_key`
names a key holding the time; without it the receipt time is used.
"""

from __future__ import annotations

from edgecollect.model import AttrValue, Parsed
from edgecollect.sources.mqtt.formats.common import (
    Builder,
    Json,
    Leaf,
    Message,
    Metadata,
    Rule,
    add_json_leaf,
    flatten,
    load_json,
    parse_time,
)


def payload_time(b: Builder, doc: Json, key: str) -> int | None:
    """The time under `key` when the rule allows payload times; counts a bad one."""
    if not key or b.rule.cfg.time != "auto" or not isinstance(doc, dict) or key not in doc:
        return None
    value = doc[key]
    if isinstance(value, (dict, list)):
        b.reject("bad_time")
        return None
    when = parse_time(value, b.rule.cfg.naive_time)
    if isinstance(when, str):
        b.reject("bad_time")
        return None
    return when


def parse(msg: Message, rule: Rule, meta: Metadata) -> Parsed:
    doc, reason = load_json(msg.payload)
    if reason:
        return Parsed(outcome=reason)
    b = Builder(msg, rule)
    if not isinstance(doc, (dict, list)):
        key = msg.captures.get("metric") or rule.cfg.name or msg.topic.rsplit("/", 1)[-1]
        entity = meta.entities.get(msg.topic)
        add_json_leaf(b, key, doc, rule.name(key), entity.unit if entity else "")
        return b.result("no_reading")
    time_key = rule.cfg.time_key
    time_ns = payload_time(b, doc, time_key)
    whole = msg.captures.get("metric") or rule.cfg.name or msg.topic.rsplit("/", 1)[-1]
    if isinstance(doc, dict) and rule.max_depth > 0:
        # The common flat object: its numbers go straight to the builder, without flatten()'s
        # tuples; anything else takes the general path below, in document order all the same.
        for key, leaf in doc.items():
            if (type(leaf) is float or type(leaf) is int) and key and key != time_key:
                b.number(key, rule.name(key), leaf, time_ns=time_ns)
                continue
            items: list[tuple[str, Leaf, int | None] | None] = (
                flatten(leaf, rule.max_depth, key, 1) if isinstance(leaf, (dict, list)) else [(key, leaf, None)])
            _leaves(b, rule, items, whole, time_key, time_ns)
        return b.result("no_reading")
    _leaves(b, rule, flatten(doc, rule.max_depth), whole, time_key, time_ns)
    return b.result("no_reading")


def _leaves(b: Builder, rule: Rule, items: list[tuple[str, Leaf, int | None] | None], whole: str,
            time_key: str, time_ns: int | None) -> None:
    for item in items:
        if item is None:
            b.reject("too_deep")
            continue
        key, leaf, channel = item
        key = key or whole  # a top-level array has no key of its own
        if key == time_key:
            continue
        extra: dict[str, AttrValue] | None = {"channel": channel} if channel is not None else None
        add_json_leaf(b, key, leaf, rule.name(key), extra=extra, time_ns=time_ns)
