"""Modbus RTU and TCP devices: energy meters, inverters, PLCs, probes on RS-485 or Ethernet.

`ModbusConfig` is the `[[sources.modbus]]` table (config.py, no pymodbus import, so check-config
works without the library); `edgecollect.sources.modbus.source.ModbusSource` owns one bus and is
imported (with pymodbus) only when a config names a modbus source. plan.py holds the pure request
planning and decoding, client.py the pymodbus edge.
"""

from edgecollect.sources.modbus.config import DeviceConfig, ModbusConfig, RegisterConfig

__all__ = ["DeviceConfig", "ModbusConfig", "RegisterConfig"]
