"""Fixtures of the chaos suite: the real peers, each stopped by a finalizer whatever the test did.

The broker is the restartable mosquitto of tests.support.broker, the sink the Go sink of
tests.support.sink (built once per session), the agent tests.support.agent's real process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.exporters.conftest import filler
from tests.support.agent import AgentProcess
from tests.support.broker import Broker, broker, running_broker
from tests.support.sink import go_sink_binary, make_sink

__all__ = ["agents", "broker", "chaos_broker", "filler", "go_sink_binary", "make_sink", "running_broker"]


@pytest.fixture
def chaos_broker(running_broker: Broker) -> Broker:
    """The restartable mosquitto (its own instance for this directory's session); chaos
    tests restart it, and `running_broker` brings it back if one left it stopped."""
    return running_broker


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """`agents(config_text, state)` -> an AgentProcess (not yet started); every one is stopped at the end."""
    made: list[AgentProcess] = []

    def make(config_text: str, state: Path | None = None) -> AgentProcess:
        config = tmp_path / f"agent{len(made)}.toml"
        config.write_text(config_text, encoding="utf-8")
        agent = AgentProcess(config, state or tmp_path / "state", tmp_path / "agent.log")
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()
