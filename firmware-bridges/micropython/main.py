# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: BLE001, SIM105, UP031
# Board entry point: builds the sensor adapters from config.CONFIG and runs the bridge forever.
# Only this file touches `machine`; bridge.py, sensors.py, slf1.py and mqtt_json.py are portable.

import sys
import time

import machine
import sensors
import slf1
from bridge import Bridge
from config import CONFIG


def device_id():
    if CONFIG["device_id"] != "auto":
        return CONFIG["device_id"]
    uid = machine.unique_id()
    return CONFIG["device_prefix"] + "".join("%02x" % b for b in uid)


def adapters():
    out = []
    for s in CONFIG["sensors"]:
        if s["type"] == "ds18b20":
            import ds18x20
            import onewire
            drv = ds18x20.DS18X20(onewire.OneWire(machine.Pin(s["pin"])))
            roms = [(name, bytes.fromhex(rom)) for name, rom in s["roms"].items()]
            out.append(sensors.DS18B20(drv, roms))
        elif s["type"] == "dht22":
            import dht
            out.append(sensors.DHT22(dht.DHT22(machine.Pin(s["pin"])), s.get("name", "dht")))
        elif s["type"] == "bme280":
            i2c = machine.I2C(0, sda=machine.Pin(s["sda"]), scl=machine.Pin(s["scl"]))
            out.append(sensors.BME280(i2c, s.get("address", 0x76), s.get("name", "bme")))
    return out


def output():
    if CONFIG["output"] == "uart":
        u = CONFIG["uart"]
        return machine.UART(u["id"], baudrate=u["baud"], tx=u["tx"], rx=u["rx"])
    return sys.stdout.buffer


def wifi(m):
    import network
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        wlan.connect(m["wifi_ssid"], m["wifi_password"])
        for _ in range(100):
            if wlan.isconnected():
                break
            time.sleep_ms(100)


def main():
    dev = device_id()
    uptime = slf1.Uptime(time.ticks_ms, time.ticks_diff)
    try:
        sensor_list = adapters()
    except Exception as exc:  # a missing sensor must not stop the others from reporting
        sensor_list = []
        sys.print_exception(exc)
    if CONFIG["output"] == "mqtt":
        from mqtt_json import MQTTClient, MqttJsonBridge
        m = CONFIG["mqtt"]
        wifi(m)
        client = MQTTClient(dev, m["host"], m["port"], user=m["user"], password=m["password"])
        client.connect()
        bridge = MqttJsonBridge(client, dev, sensor_list, uptime, time.sleep_ms,
                                CONFIG["interval_ms"], m["prefix"])
    else:
        bridge = Bridge(dev, sensor_list, output(), uptime, time.sleep_ms, CONFIG["interval_ms"])
    while True:
        try:
            bridge.run()
        except Exception as exc:
            # keep reporting; the gateway sees an E frame and the seq/uptime keep it honest
            try:
                bridge.log("bridge restart: %r" % exc, "E")
            except Exception:
                pass
            time.sleep_ms(1000)


main()
