"""Readers of the kernel's sensor files under a root: pure parsing, outcomes instead of exceptions.

Each reader re-lists its bus on every call (a sensor plugged in or removed is seen at the next
interval; a listing of /sys is a few syscalls) and returns one `Reading` per device or channel.

1-Wire (drivers/w1/slaves/w1_therm.c), families 10 (DS18S20), 22 (DS1822), 28 (DS18B20), 3b
(DS1825), 42 (DS28EA00). `w1_slave` is preferred because it carries the CRC verdict:

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

`crc=.. NO` is rejected as `crc`; t=85000 is the DS18B20 power-on reset value of its scratchpad
(a conversion that never ran, typically after a brown-out on a long bus) and is rejected as
`power_on_reset`; nine zero bytes are a bus with nobody answering (their CRC is 0, so the kernel
says YES) and are rejected as `bus_error`. Without `w1_slave`, `temperature` (milli-°C) is read;
the kernel leaves it empty when the read failed (counted as `crc`).

IIO (Documentation/ABI/testing/sysfs-bus-iio): `in_<type>[N]_input` is the processed value; else
(`in_<type>[N]_raw` + `offset`) × `scale`, per the ABI (the offset is applied before scaling;
channel-specific files win over the shared `in_<type>_scale`). IIO units: temperature milli-°C →
`Cel`, relative humidity milli-percent → `%`, pressure kPa → `hPa`.

hwmon (Documentation/hwmon/sysfs-interface.rst): in*_input mV → `V`, fan*_input RPM, curr*_input
mA → `A`, power*_input µW → `W`, energy*_input µJ → `J` (cumulative), humidity*_input
milli-percent → `%`. temp*_input is left out: the host source reports it already (psutil).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from edgecollect.model import AttrValue, Kind
from edgecollect.sources.sysfs.config import HWMON, HWMON_INPUT, IIO_DEVICES, W1_DEVICES

W1_THERM_FAMILIES = ("10-", "22-", "28-", "3b-", "42-")
POWER_ON_RESET_MILLI_C = 85000
_W1_CRC = re.compile(r"crc=([0-9a-fA-F]{2})\s+(YES|NO)")
_W1_T = re.compile(r"t=(-?\d+)")
_IIO_CHANNEL = re.compile(r"^in_(temp|humidityrelative|pressure)(\d*)_(input|raw)$")
_I2C_CLIENT = re.compile(r"^\d+-[0-9a-f]{4}$")  # bus-address, e.g. 1-0076: stable across boots

# IIO type -> (metric, unit, factor from the IIO unit)
IIO_QUANTITIES: dict[str, tuple[str, str, float]] = {
    "temp": ("hw.temperature", "Cel", 0.001),
    "humidityrelative": ("sensor.humidity", "%", 0.001),
    "pressure": ("sensor.pressure", "hPa", 10.0),
}
# hwmon prefix -> (metric, unit, factor, kind)
HWMON_QUANTITIES: dict[str, tuple[str, str, float, Kind]] = {
    "in": ("hw.voltage", "V", 0.001, "gauge"),
    "fan": ("hw.fan.speed", "rpm", 1.0, "gauge"),
    "curr": ("sensor.current", "A", 0.001, "gauge"),
    "power": ("hw.power", "W", 1e-6, "gauge"),
    "energy": ("hw.energy", "J", 1e-6, "cumulative"),
    "humidity": ("sensor.humidity", "%", 0.001, "gauge"),
}


@dataclass(frozen=True, slots=True)
class Reading:
    """One device's (or channel's) result: a value, or the reason there is none."""

    device: str  # stable id: the 1-Wire ROM id, the I2C client, or chip.input
    outcome: str  # ok | crc | power_on_reset | bus_error | read_error | parse
    metric: str = ""
    unit: str = ""
    value: float = 0.0
    kind: Kind = "gauge"
    attributes: tuple[tuple[str, AttrValue], ...] = ()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def read_w1(root: str) -> list[Reading]:
    base = os.path.join(root, W1_DEVICES)
    out = []
    for name in _listdir(base):
        if name.startswith(W1_THERM_FAMILIES):
            out.append(_w1_device(os.path.join(base, name), name))
    return out


def _w1_device(path: str, rom: str) -> Reading:
    attributes: tuple[tuple[str, AttrValue], ...] = (("hw.id", rom), ("hw.type", "temperature"), ("sensor.bus", "w1"))
    slave = _read(os.path.join(path, "w1_slave"))
    if slave is not None:
        outcome, milli = parse_w1_slave(slave)
    else:
        text = _read(os.path.join(path, "temperature"))
        if text is None:
            return Reading(rom, "read_error")
        outcome, milli = parse_w1_temperature(text)
    if outcome != "ok":
        return Reading(rom, outcome)
    return Reading(rom, "ok", "hw.temperature", "Cel", milli / 1000.0, "gauge", attributes)


def parse_w1_slave(text: str) -> tuple[str, int]:
    crc = _W1_CRC.search(text)
    temp = _W1_T.search(text)
    if crc is None or temp is None:
        return ("read_error" if not text.strip() else "parse"), 0
    if crc.group(2) != "YES":
        return "crc", 0
    scratchpad = text.split(":", 1)[0].split()
    if scratchpad and all(b == "00" for b in scratchpad):
        return "bus_error", 0
    milli = int(temp.group(1))
    if milli == POWER_ON_RESET_MILLI_C:
        return "power_on_reset", 0
    return "ok", milli


def parse_w1_temperature(text: str) -> tuple[str, int]:
    text = text.strip()
    if not text:
        return "crc", 0  # the kernel returns nothing when the scratchpad read failed
    try:
        milli = int(text)
    except ValueError:
        return "parse", 0
    if milli == POWER_ON_RESET_MILLI_C:
        return "power_on_reset", 0
    return "ok", milli


def read_iio(root: str) -> list[Reading]:
    base = os.path.join(root, IIO_DEVICES)
    out: list[Reading] = []
    for name in _listdir(base):
        if name.startswith("iio:device"):
            out.extend(_iio_device(os.path.join(base, name), name))
    return out


def _iio_device(path: str, dev_name: str) -> list[Reading]:
    chip = (_read(os.path.join(path, "name")) or "").strip() or dev_name
    parent = os.path.basename(os.path.dirname(os.path.realpath(path)))
    device = parent if _I2C_CLIENT.match(parent) else dev_name
    files = _listdir(path)
    channels: dict[tuple[str, str], str] = {}  # (type, index) -> "input" or "raw"
    for f in files:
        m = _IIO_CHANNEL.match(f)
        if m and channels.get((m.group(1), m.group(2))) != "input":
            channels[(m.group(1), m.group(2))] = m.group(3)
    out = []
    for (qtype, index), source in sorted(channels.items()):
        metric, unit, factor = IIO_QUANTITIES[qtype]
        ident = f"{device}.{qtype}{index}"
        attributes: tuple[tuple[str, AttrValue], ...] = (
            ("hw.id", device), ("hw.name", chip), ("sensor.bus", "iio"),
        ) + ((("iio.channel", int(index)),) if index else ())
        value = _iio_value(path, qtype, index, source)
        if value is None or isinstance(value, str):
            out.append(Reading(ident, value or "read_error"))
            continue
        out.append(Reading(ident, "ok", metric, unit, value * factor, "gauge", tuple(sorted(attributes))))
    return out


def _iio_value(path: str, qtype: str, index: str, source: str) -> float | str | None:
    def number(suffix: str, default: float | None) -> float | str | None:
        for name in (f"in_{qtype}{index}_{suffix}", f"in_{qtype}_{suffix}"):
            text = _read(os.path.join(path, name))
            if text is not None:
                try:
                    return float(text.strip())
                except ValueError:
                    return "parse"
        return default

    if source == "input":
        return number("input", None)
    raw = number("raw", None)
    scale = number("scale", 1.0)
    offset = number("offset", 0.0)
    for part in (raw, scale, offset):
        if part is None or isinstance(part, str):
            return part
    assert isinstance(raw, float) and isinstance(scale, float) and isinstance(offset, float)
    return (raw + offset) * scale


def read_hwmon(root: str) -> list[Reading]:
    base = os.path.join(root, HWMON)
    out: list[Reading] = []
    for hw in _listdir(base):
        path = os.path.join(base, hw)
        files = _listdir(path)
        inputs = [m for m in (HWMON_INPUT.match(f) for f in files) if m]
        if not inputs:
            continue
        chip = (_read(os.path.join(path, "name")) or hw).strip() or hw
        for m in inputs:
            prefix, index = m.group(1), m.group(2)
            metric, unit, factor, kind = HWMON_QUANTITIES[prefix]
            ident = f"{chip}.{prefix}{index}"
            label = (_read(os.path.join(path, f"{prefix}{index}_label")) or "").strip()
            attributes: dict[str, AttrValue] = {"hw.id": ident, "sensor.bus": "hwmon"}
            if label:
                attributes["hw.name"] = label
            text = _read(os.path.join(path, m.group(0)))
            if text is None:
                out.append(Reading(ident, "read_error"))
                continue
            try:
                raw = int(text.strip())
            except ValueError:
                out.append(Reading(ident, "parse"))
                continue
            out.append(Reading(ident, "ok", metric, unit, raw * factor, kind, tuple(sorted(attributes.items()))))
    return out
