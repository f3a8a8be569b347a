"""Golden payloads of real devices (../../../shared/spec/mqtt-devices.md) -> exact samples.

Each file in data/golden/ is a list of cases: subscribe rules, then messages in order, each with
the expected outcome, points (name, value, unit, kind, attributes, time) and log records. Messages
go through `MqttSource.handle`, the same path the broker session uses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgecollect.sources.mqtt import MqttConfig, MqttSource, SubscribeConfig
from tests.sources.mqtt.mqtt_support import DATA, make_context, match_points, payload_of

GOLDEN = sorted((DATA / "golden").glob("*.json"))
CASES = [
    pytest.param(case, id=f"{path.stem}:{case['case'][:60]}")
    for path in GOLDEN
    for case in json.loads(path.read_text(encoding="utf-8"))
]


def source_for(case: dict[str, Any]) -> MqttSource:
    subs = tuple(
        SubscribeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in sub.items()})
        for sub in case["subscribe"]
    )
    return MqttSource(MqttConfig(subscribe=subs, **case.get("source", {})), make_context())


def test_every_preset_has_golden_data() -> None:
    names = {p.stem for p in GOLDEN}
    presets = {"tasmota", "zigbee2mqtt", "esphome", "shelly", "homeassistant", "plain", "json", "influx"}
    assert presets <= names


@pytest.mark.parametrize("case", CASES)
def test_golden(case: dict[str, Any]) -> None:
    source = source_for(case)
    for i, message in enumerate(case["messages"]):
        parsed = source.handle(message["topic"], payload_of(message), bool(message.get("retained", False)))
        where = f"message {i} ({message['topic']})"
        assert parsed.outcome == message["outcome"], f"{where}: outcome"
        problems = match_points(message.get("points", []), list(parsed.points))
        assert not problems, f"{where}:\n" + "\n".join(problems)
        want_logs = message.get("logs", [])
        got_logs = [{"body": r.body, "attributes": dict(r.attributes)} for r in parsed.logs]
        assert got_logs == want_logs, f"{where}: logs"


def test_golden_files_are_valid_json() -> None:
    for path in GOLDEN:
        assert isinstance(json.loads(Path(path).read_text(encoding="utf-8")), list), path
