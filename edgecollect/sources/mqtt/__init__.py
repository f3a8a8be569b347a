"""The MQTT source: hear devices through a broker, at least once from broker to spool.

Modules: `config` (MqttConfig, SubscribeConfig, TlsConfig), `client` (the paho session, manual acks,
reconnects), `topics` (templates), `formats/<name>` (one parser per payload format: plain, json,
influx, tasmota, zigbee2mqtt, esphome, shelly, homeassistant, sparkplug).

Delivery semantics (design.md invariant 3). With QoS >= 1 a message is acknowledged to the broker
only after every point and log record it produced is durable in the spool (or was dropped by a
counted policy: ring overflow, spool full, cardinality). The session is persistent (stable
`client_id`, clean_session false / MQTT 5 session expiry), so if the agent dies before the ack,
the broker redelivers the message on reconnect. Consequences:

* no loss of acked QoS 1/2 messages, as long as the broker keeps the session and its queue
  (mosquitto: `persistence true`, and `max_queued_messages` large enough for the longest outage;
  its default of 1000 silently drops the rest);
* duplicates are possible: a message whose batch reached the spool but whose ack did not reach
  the broker (crash, kill -9, connection loss) is delivered and stored again. Points carry the
  receipt time unless the payload has a zoned time, so duplicates of receipt-stamped readings have
  different timestamps; consumers that need exactly-once must deduplicate (e.g. on payload time);
* QoS 2 gives no more than QoS 1 here: MQTT hands a QoS 2 message to the receiver at PUBREC, which
  paho sends on arrival, so a crash before the spool write loses it. Use QoS 1 (the default);
* QoS 0 is fire-and-forget by definition;
* rejected and empty messages are acked at once (poison never loops), in order with the others.

Throughput with QoS >= 1: the broker sends at most its in-flight window of unacked messages, and
acks wait for the spool. MQTT 5 sets that window to `max_unacked` (Receive Maximum); with 3.1.1
it is the broker's (mosquitto `max_inflight_messages`, default 20). When the window holds the
stream up, the source asks its ring for an early flush (`ctx.request_flush`);
without that, a 3.1.1 session moves about one window per `batch.flush_interval`. A slow stream is
left to the tick, so a sensor every few seconds does not cost a batch per message (pacing.py).

Naming (what every format emits; units are UCUM, values converted to them):

    hw.temperature Cel, hw.voltage V, hw.power W, hw.energy J (cumulative; kWh*3.6e6, Wh*3600)
    sensor.humidity %, sensor.pressure hPa, sensor.co2 ppm, sensor.eco2 ppm, sensor.tvoc [ppb],
    sensor.illuminance lx, sensor.current A, sensor.frequency Hz, sensor.power_factor 1,
    sensor.apparent_power VA, sensor.reactive_power var, sensor.dew_point Cel, sensor.battery %,
    sensor.link_quality 1, sensor.signal_strength dB[mW], sensor.pm25/pm10 ug/m3,
    sensor.energy.today/.yesterday J (gauges that reset), sensor.energy.returned J (cumulative)
    device.online 1/0 (availability/LWT; state, kept even when retained), device.uptime s
    <prefix>.<key> for anything else (prefix defaults to the preset: tasmota, zigbee2mqtt, ...;
    empty for json/plain/influx), e.g. tasmota.power (relay 1/0), zigbee2mqtt.occupancy,
    sparkplug.Inputs.Temperature (Sparkplug metric names, `/` -> `.`)

`hw.*` follows the OTel hardware conventions where they define the quantity; `sensor.*` is ours
for environment quantities they do not cover. Attributes: `device.id` (Tasmota topic, Z2M IEEE
address, ESPHome node, Shelly src, or a `{device}` capture), `device.name` (Z2M friendly name),
`sensor.id` (1-Wire Id, entity/object id, HA unique_id), `sensor.type` (Tasmota driver),
`component` + `channel` (Shelly `switch:0`, array index), plus template captures and the rule's
static `attributes`. Text that is not a reading becomes a log record with `mqtt.topic` and
`mqtt.key`.

Counters (edgecollect.mqtt.*, attribute `source`): messages{outcome}, connects{outcome},
acks{outcome}, points_rejected{reason}; outcomes are listed in formats/common.py.
"""

from edgecollect.sources.mqtt.client import MqttSource
from edgecollect.sources.mqtt.config import MqttConfig, SubscribeConfig, TlsConfig

__all__ = ["MqttConfig", "MqttSource", "SubscribeConfig", "TlsConfig"]
