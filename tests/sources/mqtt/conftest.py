"""One real mosquitto per test session of this folder (tests.support.broker): a free loopback
port, restartable on the same port, persistent sessions, no practical queue limit."""

from __future__ import annotations

from tests.support.broker import broker, running_broker

__all__ = ["broker", "running_broker"]
