# Board configuration: edit and copy to the board with main.py (see README.md).

CONFIG = {
    # "auto": ESP32 eFuse MAC / RP2040 flash unique id via machine.unique_id(); or a fixed string
    "device_id": "auto",
    "device_prefix": "esp32-",      # prepended to the auto id ("rp2040-" on a Pico)
    "interval_ms": 10000,
    # Output: "uart" (a UART to the gateway), "usb" (the USB REPL port itself), or "mqtt"
    "output": "usb",
    "uart": {"id": 1, "baud": 115200, "tx": 17, "rx": 16},
    "sensors": [
        # {"type": "ds18b20", "pin": 4, "roms": {"ds0": "28ff641e8316035c"}},   # ROM hex from scan()
        # {"type": "dht22", "pin": 15, "name": "dht"},
        # {"type": "bme280", "sda": 21, "scl": 22, "address": 0x76, "name": "bme"},
    ],
    "mqtt": {"host": "192.168.1.10", "port": 1883, "prefix": "edgecollect", "user": None, "password": None,
             "wifi_ssid": "", "wifi_password": ""},
}
