"""Topic templates: one string that is both the MQTT subscription filter and a capture pattern.

    tele/{device}/SENSOR        subscribes tele/+/SENSOR, captures device="<level 2>"
    zigbee2mqtt/{device...}     subscribes zigbee2mqtt/#, captures device="kitchen/floor_light"
    sensors/{line}/{device}/{metric}

`{name}` captures one level, `{name...}` one or more levels (names that contain `/`), `+` and `#`
match without capturing. Captures become attributes: `device` -> `device.id`, `sensor` ->
`sensor.id`, `metric` names the metric (plain payloads), `_` is dropped, any other name is used as
written (`{site}` -> `site`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CAPTURE_ATTRIBUTES = {"device": "device.id", "sensor": "sensor.id"}
NOT_ATTRIBUTES = ("metric", "_")


@dataclass(frozen=True, slots=True)
class Template:
    template: str
    filter: str  # what we subscribe to
    _regex: re.Pattern[str]
    names: tuple[str, ...]

    def match(self, topic: str) -> dict[str, str] | None:
        """The captures if `topic` matches, else None."""
        m = self._regex.fullmatch(topic)
        if m is None:
            return None
        return dict(zip(self.names, m.groups(), strict=True))


def compile_template(template: str) -> Template:
    """Compile a template checked by SubscribeConfig (levels are whole captures or literals)."""
    levels = template.split("/")
    filter_levels: list[str] = []
    pattern = ""
    names: list[str] = []
    multi = False
    for i, level in enumerate(levels):
        sep = "" if i == 0 else "/"
        if level.startswith("{") and level.endswith("}"):
            inner = level[1:-1]
            if inner.endswith("..."):
                names.append(inner[:-3])
                pattern += sep + "(.+)"
                multi = True
                filter_levels.append("#")
            else:
                names.append(inner)
                pattern += sep + "([^/]*)"
                filter_levels.append("+")
        elif level == "+":
            pattern += sep + "[^/]*"
            filter_levels.append("+")
        elif level == "#":
            # '#' also matches the parent level itself (MQTT 3.1.1 section 4.7.1.2).
            pattern += "(?:/.*)?" if i else ".*"
            filter_levels.append("#")
        else:
            pattern += sep + re.escape(level)
            filter_levels.append(level)
    if multi:
        # A multi-level capture must become '#', and nothing may follow '#' in a filter.
        cut = filter_levels.index("#")
        filter_levels = filter_levels[: cut + 1]
    return Template(template, "/".join(filter_levels), re.compile(pattern), tuple(names))


def capture_attributes(captures: dict[str, str]) -> dict[str, str]:
    """Attributes from template captures (see the module docstring for the mapping)."""
    out: dict[str, str] = {}
    for name, value in captures.items():
        if name in NOT_ATTRIBUTES or not value:
            continue
        out[CAPTURE_ATTRIBUTES.get(name, name)] = value
    return out
