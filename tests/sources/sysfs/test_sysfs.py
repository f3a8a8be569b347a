"""[sources.sysfs] on recorded /sys trees laid out as on real boards (symlinks included):

    rpi4-weather     Pi 4, w1-gpio with two DS18B20, a BME280 at i2c-1 0x76 (bmp280 IIO driver),
                     cpu_thermal and rpi_volt hwmon (nothing there the host source does not report)
    rpi5-hwmon-iio   Pi 5 fan (pwmfan), INA219 and SHT3x (hwmon), Si7021 (si7020 IIO: raw/scale/offset)
    w1-flaky         a long 1-Wire cable: power-on reset value, CRC failure, a silent bus, an empty read
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgecollect.config import loads
from edgecollect.sources.sysfs import SysfsConfig, present
from edgecollect.sources.sysfs.source import SysfsSource
from tests.sources.modbus.modbus_helpers import Collected, make_ctx, running

TREES = Path(__file__).parent / "trees"
REPO = Path(__file__).resolve().parents[3]


def collect(tree: Path) -> tuple[dict[tuple[str, str], tuple[float, str, str, dict[str, object]]], SysfsSource]:
    ctx = make_ctx("sysfs", "sysfs")
    source = SysfsSource(SysfsConfig(root=str(tree)), ctx)
    out = {}
    for p in source.collect():
        a = dict(p.series.attributes)
        out[(p.series.name, str(a["hw.id"]))] = (p.value, p.series.unit, p.series.kind, a)
    return out, source


def readings(source: SysfsSource) -> dict[str, int]:
    return {k: v for k, v in source._readings.snapshot().items() if v}


def test_pi4_weather_station_ds18b20_and_bme280() -> None:
    got, source = collect(TREES / "rpi4-weather")
    assert {k: v[:3] for k, v in got.items()} == {
        ("hw.temperature", "28-0316a2795cff"): (-6.937, "Cel", "gauge"),
        ("hw.temperature", "28-3c01d607d3b1"): (23.125, "Cel", "gauge"),
        ("hw.temperature", "1-0076"): (23.45, "Cel", "gauge"),  # milli-°C
        ("sensor.humidity", "1-0076"): (48.123, "%", "gauge"),  # milli-percent
        ("sensor.pressure", "1-0076"): (pytest.approx(1007.34), "hPa", "gauge"),  # kPa
    }
    assert got[("sensor.pressure", "1-0076")][3] == {"hw.id": "1-0076", "hw.name": "bme280", "sensor.bus": "iio"}
    assert got[("hw.temperature", "28-3c01d607d3b1")][3]["sensor.bus"] == "w1"
    # cpu_thermal's temp1_input is the host source's; rpi_volt has only an alarm: no hwmon series.
    assert not any(a["sensor.bus"] == "hwmon" for *_, a in got.values())
    assert readings(source) == {"ok": 5}


def test_pi5_hwmon_chips_and_an_iio_sensor_with_raw_scale_offset() -> None:
    got, _ = collect(TREES / "rpi5-hwmon-iio")
    values = {k: v[0] for k, v in got.items()}
    assert values == {
        ("hw.fan.speed", "pwmfan.fan1"): 2950,
        ("hw.voltage", "ina219.in0"): pytest.approx(0.012),
        ("hw.voltage", "ina219.in1"): pytest.approx(5.08),
        ("sensor.current", "ina219.curr1"): pytest.approx(1.25),
        ("hw.power", "ina219.power1"): pytest.approx(6.35),
        ("sensor.humidity", "sht3x.humidity1"): pytest.approx(45.3),
        # (raw + offset) × scale, in milli-units: the IIO ABI applies the offset before the scale
        ("hw.temperature", "1-0040"): pytest.approx((6554 - 4368.72) * 10.725097656 / 1000),
        ("sensor.humidity", "1-0040"): pytest.approx((7000 - 786.432) * 7.629394531 / 1000),
    }
    assert got[("hw.voltage", "ina219.in1")][3]["hw.name"] == "bus"
    assert {k: v[1] for k, v in got.items()}[("hw.power", "ina219.power1")] == "W"
    assert not any(name == "hw.temperature" and "sht3x" in hw_id for name, hw_id in got)  # the host's


def test_flaky_1wire_bus_rejects_and_counts_bad_readings() -> None:
    got, source = collect(TREES / "w1-flaky")
    assert {k: v[0] for k, v in got.items()} == {("hw.temperature", "28-00000d4e5f60"): 21.875}
    assert readings(source) == {"ok": 1, "power_on_reset": 1, "crc": 2, "bus_error": 1}


def copy_tree(name: str, dest: Path) -> Path:
    root = dest / name
    shutil.copytree(TREES / name, root, symlinks=True)
    return root


def test_hot_plug_and_recovery_are_seen_and_logged_once_per_change(tmp_path: Path) -> None:
    root = copy_tree("w1-flaky", tmp_path)
    devices = root / "sys/bus/w1/devices"
    ctx = make_ctx("sysfs", "sysfs")
    got = Collected(ctx)
    source = SysfsSource(SysfsConfig(root=str(root), interval=0.05), ctx)  # type: ignore[arg-type]
    ok = source._readings
    with running(source, ctx):
        got.wait_for(lambda c: any(s.attributes["hw.id"] == "28-00000d4e5f60" for s in c.samples), "a good reading")
        (devices / "28-00000d4e5f60").unlink()  # the sensor is unplugged
        got.wait_for(lambda c: any("28-00000d4e5f60 gone" in t for t in c.log_texts()), "the sensor gone")
        new = root / "sys/devices/w1_bus_master1/28-0000aa000001"
        new.mkdir()
        (new / "w1_slave").write_text("4b 01 4b 46 7f ff 05 10 e1 : crc=e1 YES\n4b 01 4b 46 7f ff 05 10 e1 t=20687\n")
        (devices / "28-0000aa000001").symlink_to(new)  # another one is plugged in
        got.wait_for(lambda c: any(s.attributes["hw.id"] == "28-0000aa000001" for s in c.samples), "the new sensor")
        slave = root / "sys/devices/w1_bus_master1/28-00000b2c3d4e/w1_slave"
        slave.write_text(slave.read_text().replace("crc=00 NO", "crc=00 YES"))  # the CRC failure clears
        got.wait_for(lambda c: any(s.attributes["hw.id"] == "28-00000b2c3d4e" for s in c.samples), "recovered one")
        polls = ok.value("power_on_reset")
        got.wait_for(lambda c: ok.value("power_on_reset") >= polls + 3, "three more scans")
    texts = got.pull().log_texts()
    assert sum("28-00000d4e5f60" in t for t in texts) == 2, texts  # found, gone
    assert sum("28-00000b2c3d4e" in t for t in texts) == 2, texts  # found (crc), reading again
    assert sum("28-00000a1b2c3d" in t for t in texts) == 1, texts  # found (power_on_reset), never again
    assert {s.value for s in got.samples if s.attributes["hw.id"] == "28-0000aa000001"} == {20.687}


def test_auto_reads_only_where_a_bus_exists(tmp_path: Path) -> None:
    assert present(str(TREES / "rpi4-weather")) and present(str(TREES / "rpi5-hwmon-iio"))
    assert not present(str(tmp_path))
    # a board with only the host's hwmon temperature and an alarm file: nothing for this source
    bare = tmp_path / "bare"
    shutil.copytree(TREES / "rpi4-weather", bare, symlinks=True)
    shutil.rmtree(bare / "sys/bus")
    assert not present(str(bare))
    assert SysfsConfig(root=str(bare), enabled="on").wanted()
    assert not SysfsConfig(root=str(TREES / "rpi4-weather"), enabled="off").wanted()


@pytest.mark.parametrize(("tree", "expected"), [("rpi4-weather", True), ("", False)])
def test_agent_starts_the_source_only_where_a_bus_exists(tmp_path: Path, tree: str, expected: bool) -> None:
    root = TREES / tree if tree else tmp_path / "empty"
    toml = (f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n"
            f"[sources.host]\nenabled = false\n[sources.sysfs]\nroot = '{root}'\n")
    code = (
        "import sys\n"
        "from edgecollect.config import loads\n"
        "from edgecollect.runtime import Agent\n"
        f"agent = Agent(loads({toml!r}))\n"
        "print([s.ctx.name for s in agent.sources], 'edgecollect.sources.sysfs.source' in sys.modules,\n"
        "      'pymodbus' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr
    # and no Modbus library in an agent without a modbus source
    names = "['sysfs', 'self'] True False" if expected else "['self'] False False"
    assert out.stdout.strip() == names


def test_config_keys_and_errors() -> None:
    cfg = loads('[sources.sysfs]\nenabled = "on"\ninterval = "30s"\nroot = "/tmp/x"\n')
    assert cfg.sources.sysfs == SysfsConfig(enabled="on", interval=30.0, root="/tmp/x")  # type: ignore[arg-type]
    with pytest.raises(Exception, match=r"gw.toml:2: sources.sysfs.enabled: expected one of 'auto', 'on', 'off'"):
        loads("[sources.sysfs]\nenabled = true\n", "gw.toml")
