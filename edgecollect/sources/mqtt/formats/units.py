"""Units as devices send them -> UCUM, and well-known quantities -> metric names.

Values are converted so that one metric name always has one unit: energy is `J` (kWh x 3.6e6,
Wh x 3600), temperature `Cel` (Fahrenheit converted), power `W`, voltage `V`, current `A`.
Naming follows OTel `hw.*` where the hardware conventions define the quantity (temperature,
voltage, power, energy) and `sensor.*` otherwise (the package docstring lists them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from edgecollect.model import Kind


@dataclass(frozen=True, slots=True)
class Conversion:
    unit: str  # UCUM
    scale: float = 1.0
    offset: float = 0.0

    @property
    def identity(self) -> bool:
        return self.scale == 1.0 and self.offset == 0.0


IDENTITY = Conversion("1")

# Keys are lower-cased, with spaces removed; values are the UCUM unit and the factor to reach it.
_UNITS: dict[str, Conversion] = {
    "c": Conversion("Cel"), "°c": Conversion("Cel"), "degc": Conversion("Cel"), "cel": Conversion("Cel"),
    "℃": Conversion("Cel"), "ºc": Conversion("Cel"), "celsius": Conversion("Cel"),
    "f": Conversion("Cel", 5 / 9, -32 * 5 / 9), "°f": Conversion("Cel", 5 / 9, -32 * 5 / 9),
    "degf": Conversion("Cel", 5 / 9, -32 * 5 / 9), "℉": Conversion("Cel", 5 / 9, -32 * 5 / 9),
    "k": Conversion("K"),
    "%": Conversion("%"), "%rh": Conversion("%"), "percent": Conversion("%"),
    "hpa": Conversion("hPa"), "mbar": Conversion("hPa"), "pa": Conversion("hPa", 0.01),
    "kpa": Conversion("hPa", 10.0), "bar": Conversion("hPa", 1000.0), "mmhg": Conversion("mm[Hg]"),
    "inhg": Conversion("[in_i'Hg]"),
    "w": Conversion("W"), "kw": Conversion("W", 1000.0), "mw": Conversion("W", 0.001),
    "va": Conversion("VA"), "var": Conversion("var"), "kvar": Conversion("var", 1000.0),
    "j": Conversion("J"), "kj": Conversion("J", 1000.0), "wh": Conversion("J", 3600.0),
    "kwh": Conversion("J", 3.6e6), "mwh": Conversion("J", 3.6), "wmin": Conversion("J", 60.0),
    "varh": Conversion("J", 3600.0), "kvarh": Conversion("J", 3.6e6),
    "v": Conversion("V"), "mv": Conversion("V", 0.001), "kv": Conversion("V", 1000.0),
    "a": Conversion("A"), "ma": Conversion("A", 0.001),
    "hz": Conversion("Hz"),
    "lx": Conversion("lx"), "lux": Conversion("lx"),
    "ppm": Conversion("ppm"), "ppb": Conversion("[ppb]"),
    "µg/m³": Conversion("ug/m3"), "μg/m³": Conversion("ug/m3"), "ug/m3": Conversion("ug/m3"),
    "µg/m3": Conversion("ug/m3"),
    "dbm": Conversion("dB[mW]"), "db": Conversion("dB"),
    "s": Conversion("s"), "ms": Conversion("ms"), "min": Conversion("s", 60.0), "h": Conversion("s", 3600.0),
    "m": Conversion("m"), "cm": Conversion("cm"), "mm": Conversion("mm"),
    "m/s": Conversion("m/s"), "km/h": Conversion("km/h"),
    "l": Conversion("L"), "m³": Conversion("m3"), "m3": Conversion("m3"),
    "kb": Conversion("KiBy"), "kib": Conversion("KiBy"), "b": Conversion("By"),
    "lqi": IDENTITY, "": IDENTITY, "1": IDENTITY,
}


@lru_cache(maxsize=1024)
def convert(unit: str) -> Conversion:
    """The UCUM unit (and factor) for a unit string as devices write it; unknown units pass through."""
    key = unit.replace(" ", "").lower()
    # Home Assistant configs sometimes carry the template escape: "%%" or "°°C".
    key = key.replace("%%", "%")
    found = _UNITS.get(key)
    if found is not None:
        return found
    return Conversion(unit.strip())


@dataclass(frozen=True, slots=True)
class Quantity:
    name: str
    unit: str  # the unit devices use by default when they do not say (converted by `convert`)
    kind: Kind = "gauge"


# Lower-cased device keys (Tasmota, Zigbee2MQTT, Shelly, HA device_class) -> what they measure.
QUANTITIES: dict[str, Quantity] = {
    "temperature": Quantity("hw.temperature", "Cel"),
    "tc": Quantity("hw.temperature", "Cel"),
    "humidity": Quantity("sensor.humidity", "%"),
    "dewpoint": Quantity("sensor.dew_point", "Cel"),
    "pressure": Quantity("sensor.pressure", "hPa"),
    "atmospheric_pressure": Quantity("sensor.pressure", "hPa"),
    "carbondioxide": Quantity("sensor.co2", "ppm"),
    "co2": Quantity("sensor.co2", "ppm"),
    "carbon_dioxide": Quantity("sensor.co2", "ppm"),
    "eco2": Quantity("sensor.eco2", "ppm"),
    "tvoc": Quantity("sensor.tvoc", "ppb"),
    "illuminance": Quantity("sensor.illuminance", "lx"),
    "illuminance_lux": Quantity("sensor.illuminance", "lx"),
    "power": Quantity("hw.power", "W"),
    "apower": Quantity("hw.power", "W"),
    "act_power": Quantity("hw.power", "W"),
    "apparentpower": Quantity("sensor.apparent_power", "VA"),
    "aprt_power": Quantity("sensor.apparent_power", "VA"),
    "apparent_power": Quantity("sensor.apparent_power", "VA"),
    "reactivepower": Quantity("sensor.reactive_power", "var"),
    "reactive_power": Quantity("sensor.reactive_power", "var"),
    "factor": Quantity("sensor.power_factor", "1"),
    "pf": Quantity("sensor.power_factor", "1"),
    "power_factor": Quantity("sensor.power_factor", "1"),
    "voltage": Quantity("hw.voltage", "V"),
    "current": Quantity("sensor.current", "A"),
    "frequency": Quantity("sensor.frequency", "Hz"),
    "freq": Quantity("sensor.frequency", "Hz"),
    "energy": Quantity("hw.energy", "kWh", "cumulative"),
    "total": Quantity("hw.energy", "kWh", "cumulative"),
    "battery": Quantity("sensor.battery", "%"),
    "linkquality": Quantity("sensor.link_quality", "1"),
    "signal_strength": Quantity("sensor.signal_strength", "dBm"),
    "rssi": Quantity("sensor.signal_strength", "dBm"),
    "pm25": Quantity("sensor.pm25", "ug/m3"),
    "pm2.5": Quantity("sensor.pm25", "ug/m3"),
    "pm10": Quantity("sensor.pm10", "ug/m3"),
}


def quantity(key: str) -> Quantity | None:
    return QUANTITIES.get(key.lower())
