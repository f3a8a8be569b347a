"""A payload format costs nothing until a subscription names it: its module loads on first lookup."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edgecollect.sources.mqtt.formats import PARSERS

REPO = Path(__file__).resolve().parents[3]

PROBE = """
import sys
from edgecollect.sources.mqtt import MqttSource
from edgecollect.sources.mqtt.formats import PARSERS
PARSERS["json"]
print(" ".join(m for m in sys.modules if m.startswith("edgecollect.sources.mqtt.formats.")))
"""


def test_a_json_source_loads_the_json_parser_and_no_other() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    loaded = {name.rsplit(".", 1)[1] for name in done.stdout.split()}
    assert "json" in loaded
    assert loaded & {"sparkplug", "homeassistant", "tasmota", "zigbee2mqtt", "esphome", "shelly", "influx"} == set()


def test_every_format_has_a_parser() -> None:
    assert sorted(PARSERS) == ["esphome", "homeassistant", "influx", "json", "plain", "shelly", "sparkplug",
                               "tasmota", "zigbee2mqtt"]
    assert all(callable(PARSERS[name]) for name in PARSERS)
