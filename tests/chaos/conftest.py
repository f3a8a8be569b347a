"""Fixtures of the chaos suite: the real peers, each stopped by a finalizer whatever the test did.

The broker is the MQTT tests' restartable mosquitto (tests/sources/mqtt/conftest.py), the sink the
interop Go sink (tests/interop), built once per session by the exporters' fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import Agent
from tests.exporters.conftest import filler, make_sink, sink_binary
from tests.sources.mqtt.conftest import Broker, broker, running_broker

__all__ = ["agents", "broker", "chaos_broker", "filler", "make_sink", "running_broker", "sink_binary"]


@pytest.fixture
def chaos_broker(running_broker: Broker) -> Broker:
    """The MQTT tests' restartable mosquitto (its own instance for this directory's session); chaos
    tests restart it, and `running_broker` brings it back if one left it stopped."""
    return running_broker


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """`agents(config_text, state)` -> an Agent (not yet started); every one is stopped at the end."""
    made: list[Agent] = []

    def make(config_text: str, state: Path | None = None) -> Agent:
        config = tmp_path / f"agent{len(made)}.toml"
        config.write_text(config_text, encoding="utf-8")
        agent = Agent(config, state or tmp_path / "state", tmp_path / "agent.log")
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()
