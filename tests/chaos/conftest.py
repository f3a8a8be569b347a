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
from tests.sources.mqtt.conftest import Broker

__all__ = ["agents", "chaos_broker", "filler", "make_sink", "sink_binary"]


@pytest.fixture
def chaos_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of the test's own, since chaos tests stop and restart it."""
    broker = Broker(tmp_path_factory.mktemp("chaos-mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


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
