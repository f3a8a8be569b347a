"""Real peers for the gateway test: mosquitto (the MQTT tests' broker), the Go sink, the agents."""

from tests.chaos.conftest import agents
from tests.exporters.conftest import make_sink, sink_binary
from tests.exporters.test_tls import pki
from tests.sources.mqtt.conftest import broker, running_broker

__all__ = ["agents", "broker", "make_sink", "pki", "running_broker", "sink_binary"]
