"""The MicroPython bridge on the host: golden frames under the unix port, cross-compilation for the
boards' architectures, sensor adapters on fake chips, MQTT mode against a real mosquitto, and the
bridge writing into a pty that the SerialSource reads."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.firmware.fwhelp import HERE, MP_DIR, golden, micropython, tool
from tests.support.broker import Broker

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.name for p in MP_DIR.glob("*.py"))


def test_bridge_modules_are_all_there() -> None:
    assert {"slf1.py", "sensors.py", "bridge.py", "mqtt_json.py", "main.py", "config.py"} <= set(MODULES)


def test_micropython_encoder_reproduces_golden_frames_byte_for_byte() -> None:
    g = golden()
    run = micropython("golden_runner.py", str(REPO / "firmware-bridges" / "slf1" / "golden.json"))
    assert run.returncode == 0, run.stderr.decode()
    expected = b"".join(v["frame"].encode("latin-1") + g["line_end"].encode() for v in g["frames"])
    expected += g["crc_check"]["crc16"].encode() + b"\n"
    assert run.stdout == expected


@pytest.mark.parametrize("arch", ["xtensawin", "armv6m"])
@pytest.mark.parametrize("module", MODULES)
def test_mpy_cross_compiles_for_the_boards(module: str, arch: str, tmp_path: Path) -> None:
    out = tmp_path / module.replace(".py", ".mpy")
    run = subprocess.run([tool("mpy-cross"), f"-march={arch}", "-o", str(out), str(MP_DIR / module)],
                         capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    data = out.read_bytes()
    assert data[:1] == b"M" and len(data) > 100


def test_precompiled_mpy_runs_the_golden_vectors(tmp_path: Path) -> None:
    """The .mpy a board would load (bytecode, no native arch) gives the same frames as the source."""
    out = tmp_path / "slf1.mpy"
    subprocess.run([tool("mpy-cross"), "-o", str(out), str(MP_DIR / "slf1.py")], check=True)
    env = dict(os.environ, MICROPYPATH=f"{tmp_path}:{HERE / 'mp'}")
    run = subprocess.run([tool("micropython"), str(HERE / "mp" / "golden_runner.py"),
                          str(REPO / "firmware-bridges" / "slf1" / "golden.json")],
                         env=env, capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout.splitlines()[0] == golden()["frames"][0]["frame"].encode()


def parse_frames(raw: bytes) -> list[Any]:
    from edgecollect.sources.serial.framing import slf1

    frames = [slf1.decode(line) for line in raw.split(b"\r\n") if line]
    assert all(isinstance(f, slf1.Frame) for f in frames), frames
    return frames


def test_bridge_loop_frames_units_errors_and_seq() -> None:
    run = micropython("run_bridge.py", "-", "3")
    assert run.returncode == 0, run.stderr.decode()
    frames = parse_frames(run.stdout)
    assert [f.kind for f in frames] == ["I", "D", "D", "E", "D", "L"]
    assert [f.seq for f in frames] == list(range(6))
    assert all(f.device_id == "mp-test-01" for f in frames)
    uptimes = [f.uptime_ms for f in frames]
    assert uptimes == sorted(uptimes)
    assert dict(frames[0].texts) == {"fw": "1.0.0", "units": "temp:Cel;hum:%"}
    assert frames[1].values == (("temp.ds0", 21.5), ("temp.ds1", -3.06), ("temp.ds2", None),
                                ("temp.dht", 22.3), ("hum.dht", 41.7))
    assert dict(frames[3].texts)["code"] == "dht_timeout"  # every third DHT read times out
    assert frames[4].values == (("temp.ds0", 21.5), ("temp.ds1", -3.06), ("temp.ds2", None))
    # the DS18B20 conversion wait (750 ms) and the interval sleeps went through sleep_ms
    assert dict(frames[5].texts)["msg"] == "done, sleeps=5"


def test_encoder_splits_fields_over_frames_within_255_bytes() -> None:
    script = (
        "import slf1\n"
        "e = slf1.Encoder('split-01', lambda: 1234)\n"
        "fs = e.data([('temp.probe%02d' % i, -12345 - i, 3) for i in range(40)])\n"
        "import sys\n"
        "for f in fs: sys.stdout.buffer.write(f)\n"
    )
    run = subprocess.run([tool("micropython"), "-c", script], env=dict(os.environ, MICROPYPATH=str(MP_DIR)),
                         capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    lines = [line for line in run.stdout.split(b"\r\n") if line]
    assert len(lines) > 1 and all(len(line) <= 255 for line in lines)
    frames = parse_frames(run.stdout)
    keys = [k for f in frames for k, _ in f.values]
    assert keys == [f"temp.probe{i:02d}" for i in range(40)]
    assert [f.seq for f in frames] == list(range(len(frames)))


def test_uptime_extends_micropython_ticks_past_their_2_30_wrap() -> None:
    script = (
        "import slf1\n"
        "PERIOD = 1 << 30\n"
        "t = [PERIOD - 1000]\n"
        "diff = lambda a, b: ((a - b + PERIOD // 2) & (PERIOD - 1)) - PERIOD // 2\n"
        "u = slf1.Uptime(lambda: t[0], diff)\n"
        "out = [u()]\n"
        "for step in (600, 600, 5000):\n"
        "    t[0] = (t[0] + step) & (PERIOD - 1)\n"
        "    out.append(u())\n"
        "print(out)\n"
    )
    run = subprocess.run([tool("micropython"), "-c", script], env=dict(os.environ, MICROPYPATH=str(MP_DIR)),
                         capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    start = (1 << 30) - 1000
    assert json.loads(run.stdout) == [start, start + 600, start + 1200, start + 6200]


def bme280_reference(cal: dict[str, int], adc_t: int, adc_p: int, adc_h: int) -> tuple[float, float, float]:
    """The BME280 datasheet's floating-point compensation (appendix 8.1), as an independent check."""
    var1 = (adc_t / 16384.0 - cal["T1"] / 1024.0) * cal["T2"]
    var2 = ((adc_t / 131072.0 - cal["T1"] / 8192.0) ** 2) * cal["T3"]
    t_fine = var1 + var2
    temp = t_fine / 5120.0
    v1 = t_fine / 2.0 - 64000.0
    v2 = v1 * v1 * cal["P6"] / 32768.0
    v2 = v2 + v1 * cal["P5"] * 2.0
    v2 = v2 / 4.0 + cal["P4"] * 65536.0
    v1 = (cal["P3"] * v1 * v1 / 524288.0 + cal["P2"] * v1) / 524288.0
    v1 = (1.0 + v1 / 32768.0) * cal["P1"]
    p = 1048576.0 - adc_p
    p = (p - v2 / 4096.0) * 6250.0 / v1
    v1 = cal["P9"] * p * p / 2147483648.0
    v2 = p * cal["P8"] / 32768.0
    p = p + (v1 + v2 + cal["P7"]) / 16.0
    h = t_fine - 76800.0
    h = (adc_h - (cal["H4"] * 64.0 + cal["H5"] / 16384.0 * h)) * (
        cal["H2"] / 65536.0 * (1.0 + cal["H6"] / 67108864.0 * h * (1.0 + cal["H3"] / 67108864.0 * h)))
    h = h * (1.0 - cal["H1"] * h / 524288.0)
    return temp, p / 100.0, min(max(h, 0.0), 100.0)


def test_bme280_integer_compensation_matches_the_datasheet() -> None:
    run = micropython("run_bme280.py")
    assert run.returncode == 0, run.stderr.decode()
    out = json.loads(run.stdout)
    readings = {k: m / 10**d for k, m, d in out["readings"]}
    # BMP280 datasheet 3.12 worked example: 25.08 Cel, 100653.27 Pa
    assert readings["temp.bme"] == 25.08
    assert readings["press.bme"] == pytest.approx(1006.53, abs=0.011)
    t, p, h = bme280_reference(out["cal"], 519888, 415148, 30000)
    assert readings["temp.bme"] == pytest.approx(t, abs=0.01)
    assert readings["press.bme"] == pytest.approx(p, abs=0.02)
    assert readings["hum.bme"] == pytest.approx(h, abs=0.05)
    assert out["writes"] == [[0xF2, [1]], [0xF4, [0x25]]]  # humidity x1, then a forced measurement


@pytest.mark.integration
def test_mqtt_json_mode_publishes_to_a_real_mosquitto(tmp_path: Path) -> None:
    import paho.mqtt.client as mqtt

    broker = Broker(tmp_path)
    broker.start()
    port = broker.port
    received: list[tuple[str, bytes, bool]] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    client.on_message = lambda c, u, m: received.append((m.topic, m.payload, bool(m.retain)))
    subscribed = threading.Event()
    client.on_subscribe = lambda c, u, mid, codes, props: subscribed.set()
    try:
        client.connect("127.0.0.1", port)
        client.subscribe("edgecollect/#")
        client.loop_start()
        assert subscribed.wait(15), "no SUBACK from mosquitto"  # else the bridge's first messages go nowhere
        run = micropython("run_mqtt.py", "127.0.0.1", str(port), "4")
        assert run.returncode == 0, run.stderr.decode()
        deadline = time.monotonic() + 10
        while len(received) < 7 and time.monotonic() < deadline:
            time.sleep(0.02)
        client.loop_stop()
        client.disconnect()
    finally:
        broker.stop()
    topics = [t for t, _, _ in received]
    assert topics == ["edgecollect/mp-mqtt-01/info", "edgecollect/mp-mqtt-01/data", "edgecollect/mp-mqtt-01/error",
                      "edgecollect/mp-mqtt-01/data", "edgecollect/mp-mqtt-01/data", "edgecollect/mp-mqtt-01/error",
                      "edgecollect/mp-mqtt-01/data"]
    info = json.loads(received[0][1])
    assert info == {"fw": "1.0.0", "units": {"temp": "Cel", "hum": "%"}}
    data = [json.loads(p) for t, p, _ in received if t.endswith("/data")]
    assert data[0] == {"seq": 0, "uptime_ms": data[0]["uptime_ms"], "temp.dht": 19.3, "hum.dht": 55.0}
    assert [d["seq"] for d in data] == [0, 1, 2, 3]
    assert "temp.dht" not in data[1]  # the failed read is an error message, not a zero
    assert json.loads(received[2][1])["code"] == "dht_timeout"


@pytest.mark.integration
def test_micropython_bridge_into_a_pty_reaches_the_serial_source(tmp_path: Path) -> None:
    """End to end: bridge (unix port, fake sensors) -> socat pty pair -> SerialSource -> ring."""
    from edgecollect.sources.serial import SerialConfig
    from tests.sources.serial.serial_helpers import Collected, counters, make_ctx, running

    board, gateway = tmp_path / "board", tmp_path / "gateway"
    socat = subprocess.Popen([tool("socat"), f"pty,raw,echo=0,link={board}", f"pty,raw,echo=0,link={gateway}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not (board.exists() and gateway.exists()):
            assert time.monotonic() < deadline and socat.poll() is None, "socat did not create the ptys"
            time.sleep(0.02)
        ctx = make_ctx()
        got = Collected(ctx)
        with running(SerialConfig(port=str(gateway), prefix="greenhouse."), ctx):
            got.wait_for(lambda c: counters(ctx).get("port_opens", {}).get("", 0) == 1, what="open")
            run = micropython("run_bridge.py", str(board), "3")
            assert run.returncode == 0, run.stderr.decode()
            got.wait_for(lambda c: any("done" in str(r.body) for r in c.logs), what="the final L frame")
    finally:
        socat.terminate()
        socat.wait(10)
    assert counters(ctx)["frames"] == {"ok": 6}
    view = [(s.metric, s.unit, s.attributes, s.value) for s in got.samples]
    dev = {"device.id": "mp-test-01"}
    first = [("greenhouse.temp", "Cel", {**dev, "sensor.id": "ds0"}, 21.5),
             ("greenhouse.temp", "Cel", {**dev, "sensor.id": "ds1"}, -3.06),
             ("greenhouse.temp", "Cel", {**dev, "sensor.id": "dht"}, 22.3),
             ("greenhouse.hum", "%", {**dev, "sensor.id": "dht"}, 41.7)]
    assert view[:4] == first and view[4:8] == first
    assert view[8:] == first[:2]  # the third DHT read failed: no DHT values, no zeros
    bodies = {str(r.body): r.severity_text for r in got.logs}
    assert bodies["[Errno 110] ETIMEDOUT"] == "ERROR"
    assert any(b.startswith("device hello: fw=1.0.0") for b in bodies)
