"""Real peers for the gateway test: mosquitto, the Go sink (tests.support), the agents."""

from tests.chaos.conftest import agents
from tests.exporters.test_tls import pki
from tests.support.broker import broker, running_broker
from tests.support.sink import go_sink_binary, make_sink

__all__ = ["agents", "broker", "go_sink_binary", "make_sink", "pki", "running_broker"]
