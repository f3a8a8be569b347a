# micropython run_mqtt.py HOST PORT CYCLES: the MQTT JSON mode against a real broker.
import sys
import time

import sensors
from fakes import FakeDHT22
from mqtt_json import MQTTClient, MqttJsonBridge

host, port, cycles = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MQTTClient("mp-mqtt-01", host, port)
client.connect()
bridge = MqttJsonBridge(client, "mp-mqtt-01", [sensors.DHT22(FakeDHT22(19.25, 55.0, fail_every=2))],
                        time.ticks_ms, lambda ms: None, 0, "edgecollect")
bridge.run(cycles)
client.disconnect()
print("published")
