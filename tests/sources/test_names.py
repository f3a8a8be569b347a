"""A source's identity is its name, never its place in the file: defaults come from the device
(the serial port, the broker and topics), survive reordering, and two sources with one name are a
config error on the second one's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecollect.config import loads
from edgecollect.configtypes import FieldError
from edgecollect.errors import ConfigError
from edgecollect.sources.mqtt.client import default_client_id
from edgecollect.sources.mqtt.config import MqttConfig, SubscribeConfig
from edgecollect.sources.registry import instances
from edgecollect.sources.serial.config import SerialConfig

MODBUS = '[[sources.modbus]]\nname = "{name}"\nendpoint = "127.0.0.1:502"\n' \
         '[[sources.modbus.devices]]\nunit = 1\n[[sources.modbus.devices.registers]]\naddress = 0\nmetric = "m"\n'


def names(text: str) -> list[str]:
    return [name for kind, name, _ in instances(loads(text, "gw.toml").sources) if kind.array]


def mqtt_table(server: str, *topics: str, name: str = "") -> str:
    head = f'[[sources.mqtt]]\nserver = "{server}"\n' + (f'name = "{name}"\n' if name else "")
    return head + "".join(f'[[sources.mqtt.subscribe]]\ntopic = "{t}"\n' for t in topics)


def test_serial_default_names_come_from_the_port() -> None:
    assert SerialConfig(port="/dev/ttyUSB0").default_name() == "ttyUSB0"
    assert SerialConfig(port="/dev/serial/by-id/usb-FTDI_FT232R-if00*").default_name() == "usb-FTDI_FT232R-if00"
    assert SerialConfig(port="socket://10.0.0.5:4001").default_name() == "socket-10.0.0.5-4001"
    assert SerialConfig(port="loop://").default_name() == "loop"


def test_mqtt_default_name_is_broker_and_topics_whatever_their_order() -> None:
    a = MqttConfig(server="mqtt://broker.lan:1883",
                   subscribe=(SubscribeConfig(topic="a/#"), SubscribeConfig(topic="b/#")))
    b = MqttConfig(server="mqtt://broker.lan:1883",
                   subscribe=(SubscribeConfig(topic="b/#"), SubscribeConfig(topic="a/#")))
    assert a.default_name() == b.default_name()
    assert a.default_name().startswith("broker.lan-1883-")
    other_topics = MqttConfig(server="mqtt://broker.lan:1883", subscribe=(SubscribeConfig(topic="a/#"),))
    other_broker = MqttConfig(server="mqtt://other.lan:1883", subscribe=a.subscribe)
    assert len({a.default_name(), other_topics.default_name(), other_broker.default_name()}) == 3


def test_reordering_sources_keeps_every_name() -> None:
    one = mqtt_table("mqtt://127.0.0.1:1883", "tele/+/SENSOR")
    two = mqtt_table("mqtt://127.0.0.1:1883", "zigbee2mqtt/#")
    port_a, port_b = '[[sources.serial]]\nport = "/dev/ttyUSB0"\n', '[[sources.serial]]\nport = "/dev/ttyACM0"\n'
    forward = names(one + two + port_a + port_b)
    backward = names(port_b + two + port_a + one)
    assert sorted(forward) == sorted(backward)
    assert {"serial.ttyUSB0", "serial.ttyACM0"} <= set(forward)
    assert len(set(forward)) == 4


def test_a_written_name_is_the_identity() -> None:
    text = mqtt_table("mqtt://127.0.0.1:1883", "a/#", name="barn") + \
        '[[sources.serial]]\nport = "/dev/ttyUSB0"\nname = "greenhouse"\n' + MODBUS.format(name="meter")
    assert names(text) == ["mqtt.barn", "serial.greenhouse", "modbus.meter"]


def test_two_sources_with_one_written_name_are_an_error_on_the_second_name() -> None:
    text = mqtt_table("mqtt://127.0.0.1:1883", "a/#", name="barn") + \
        '[[sources.serial]]\nport = "/dev/ttyUSB0"\nname = "barn"\n'
    with pytest.raises(ConfigError) as err:
        loads(text, "gw.toml")
    assert str(err.value).startswith(
        'gw.toml:8: sources.serial[0].name: expected a name no other source has, found'), err.value
    assert 'found "barn", as sources.mqtt[0] has' in str(err.value)


def test_two_sources_that_default_to_one_name_are_an_error_on_the_second_table() -> None:
    text = '[[sources.serial]]\nport = "/dev/ttyUSB0"\n\n[[sources.serial]]\nport = "/dev/usb/ttyUSB0"\n'
    with pytest.raises(ConfigError) as err:
        loads(text, "gw.toml")
    assert str(err.value).startswith("gw.toml:4: sources.serial[1].name: expected a name no other source has")
    assert 'found nothing, so the default "ttyUSB0", as sources.serial[0] has' in str(err.value)
    loads(text.replace('usb/ttyUSB0"', 'usb/ttyUSB0"\nname = "second"'), "gw.toml")  # a name settles it


def test_a_bad_name_is_refused_on_its_line() -> None:
    with pytest.raises(ConfigError, match=r"gw.toml:3: sources.serial\[0\].name: expected a short name"):
        loads('[[sources.serial]]\nport = "/dev/ttyUSB0"\nname = "the barn"\n', "gw.toml")
    with pytest.raises(FieldError):
        MqttConfig(name="-x")


def test_the_default_client_id_comes_from_the_name_and_never_collides_when_cut() -> None:
    assert default_client_id("gw-1", "mqtt.barn") == "edgecollect-gw-1-mqtt.barn"
    assert default_client_id("gw 1", "mqtt.b/c") == "edgecollect-gw-1-mqtt.b-c"
    long_a = default_client_id("gateway-" + "x" * 40, "mqtt.broker.example.lan-1883-aaaaaaaa")
    long_b = default_client_id("gateway-" + "x" * 40, "mqtt.broker.example.lan-1883-bbbbbbbb")
    assert len(long_a) == len(long_b) == 64 and long_a != long_b


def test_every_array_source_is_named_in_the_reference_config() -> None:
    reference = (Path(__file__).resolve().parents[2] / "configs" / "edgecollect.toml").read_text()
    for kind in ("mqtt", "serial", "modbus"):
        section = reference.split(f"# [[sources.{kind}]]")[1].split("# [")[0]
        assert "# name = " in section, kind
