"""The Arduino bridge on the host: slf1.h with g++ and the Arduino.h shim reproduces the golden
frames; the sketch builds for the ATmega328P with Debian's AVR toolchain and core within its flash
budget; simavr runs the firmware and its UART frames reach the SerialSource through a pty."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from edgecollect.sources.serial.framing import slf1
from tests.firmware.fwhelp import ARDUINO_DIR, golden, tool

FLASH_BUDGET = 16 * 1024  # bytes of .text + .data; an Uno has 32 KiB minus the 0.5 KiB bootloader
RAM_BUDGET = 1024  # bytes of .data + .bss, of the ATmega328P's 2 KiB (the rest is stack)


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("host") / "golden_driver"
    run = subprocess.run(
        [tool("g++"), "-std=c++11", "-Wall", "-Wextra", "-Werror", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", f"-I{ARDUINO_DIR / 'test'}", f"-I{ARDUINO_DIR / 'slf1_bridge'}",
         str(ARDUINO_DIR / "test" / "golden_driver.cpp"), "-o", str(out)],
        capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    return out


def commands_for(vec: dict[str, object]) -> list[str]:
    cmds = [f"B {vec['kind']} {vec['device_id']} {vec['seq']} {vec['uptime_ms']}"]
    if vec["kind"] == "D":
        for key, mantissa, decimals in vec["fixed"]:  # type: ignore[attr-defined]
            cmds.append(f"N {key}" if mantissa is None else f"X {key} {mantissa} {decimals}")
    else:
        for key, text in vec["fields"]:  # type: ignore[attr-defined]
            cmds.append(f"T {key} {text.encode('latin-1').hex()}")
    return [*cmds, "S"]


def drive(driver: Path, cmds: list[str]) -> bytes:
    run = subprocess.run([str(driver)], input="\n".join(cmds).encode() + b"\n", capture_output=True, check=False)
    assert run.returncode == 0, run.stderr.decode()
    return run.stdout


def test_arduino_encoder_reproduces_golden_frames_byte_for_byte(driver: Path) -> None:
    g = golden()
    cmds = [c for v in g["frames"] for c in commands_for(v)]
    cmds.append("C " + g["crc_check"]["input"].encode().hex())
    expected = b"".join(v["frame"].encode("latin-1") + g["line_end"].encode() for v in g["frames"])
    assert drive(driver, cmds) == expected + g["crc_check"]["crc16"].encode() + b"\n"


def test_arduino_encoder_rolls_back_a_field_that_would_pass_255_bytes(driver: Path) -> None:
    cmds = ["B D nano-0123456789 4294967290 4294967295"]
    cmds += [f"X temp.probe{i:02d} {-2147483647 + i} 9" for i in range(30)]
    out = drive(driver, [*cmds, "S"])
    lines = [line for line in out.split(b"\r\n") if line]
    assert len(lines) > 2 and all(len(line) <= 255 for line in lines)
    frames = [slf1.decode(line) for line in lines]
    assert all(isinstance(f, slf1.Frame) for f in frames), frames
    keys = [k for f in frames for k, _ in f.values]  # type: ignore[union-attr]
    assert keys == [f"temp.probe{i:02d}" for i in range(30)]
    assert [f.seq for f in frames] == [4294967290 + i for i in range(len(frames))]  # type: ignore[union-attr]
    assert frames[0].values[0] == ("temp.probe00", -2.147483647)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def avr_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("avr")
    for name in ("avr-gcc", "avr-g++", "avr-size", "avr-objcopy", "make"):
        tool(name)
    core = Path("/usr/share/arduino/hardware/arduino/avr/cores/arduino/Arduino.h")
    assert core.exists(), "arduino-core-avr is not installed; run tests/firmware/install-deps.sh"
    run = subprocess.run(["make", "-C", str(ARDUINO_DIR), "-j2", f"BUILD={build}"], capture_output=True,
                         check=False)
    assert run.returncode == 0, run.stdout.decode()[-3000:] + run.stderr.decode()[-3000:]
    assert (build / "slf1_bridge.hex").stat().st_size > 0
    return build / "slf1_bridge.elf"


def test_sketch_builds_for_atmega328p_within_flash_and_ram_budget(avr_elf: Path) -> None:
    out = subprocess.run([tool("avr-size"), "-A", str(avr_elf)], capture_output=True, check=True).stdout.decode()
    sizes = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\.(\w+)\s+(\d+)", out, re.MULTILINE)}
    flash = sizes["text"] + sizes["data"]
    ram = sizes["data"] + sizes.get("bss", 0)
    print(f"slf1_bridge for atmega328p: flash {flash} B (budget {FLASH_BUDGET}), RAM {ram} B (budget {RAM_BUDGET})")
    assert 1000 < flash < FLASH_BUDGET
    assert ram < RAM_BUDGET


@pytest.mark.integration
def test_sketch_runs_in_simavr_and_its_uart_reaches_the_serial_source(avr_elf: Path) -> None:
    """simavr prints the UART as text lines (CR LF shown as '..'); we replay each frame into a pty."""
    from edgecollect.sources.serial import SerialConfig
    from tests.sources.serial.serial_helpers import Collected, counters, make_ctx, running

    sim = subprocess.Popen([tool("simavr"), "-m", "atmega328p", "-f", "16000000", str(avr_elf)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    frame_re = re.compile(rb"\$1,[^$*]*\*[0-9A-F]{4}")
    frames: list[bytes] = []
    master, slave = os.openpty()
    ctx = make_ctx()
    got = Collected(ctx)
    try:
        with running(SerialConfig(port=os.ttyname(slave)), ctx):
            got.wait_for(lambda c: counters(ctx).get("port_opens", {}).get("", 0) == 1, what="open")
            os.write(master, b"\r\n")
            timer = threading.Timer(60, sim.kill)  # bound: a hung simulator fails the test below
            timer.start()
            assert sim.stdout is not None
            for raw in sim.stdout:
                m = frame_re.search(raw)
                if m:
                    frames.append(m.group(0))
                    os.write(master, m.group(0) + b"\r\n")
                if len([f for f in frames if f.startswith(b"$1,D")]) >= 2:
                    break
            timer.cancel()
            got.wait_for(lambda c: counters(ctx).get("frames", {}).get("ok", 0) == len(frames), what="all frames")
    finally:
        sim.kill()
        sim.wait(10)
        os.close(master)
        os.close(slave)
    kinds = [f[3:4] for f in frames]
    assert kinds[0] == b"I" and kinds.count(b"D") == 2, frames
    assert counters(ctx)["frames"] == {"ok": len(frames)}
    decoded = [slf1.decode(f) for f in frames]
    assert [d.seq for d in decoded] == list(range(len(frames)))  # type: ignore[union-attr]
    assert all(d.device_id == "uno-unset" for d in decoded)  # type: ignore[union-attr]
    # no DHT22 in the simulator: an E frame and empty values, never zeros
    assert b"code=dht_timeout" in frames[1]
    metrics = {(s.metric, s.unit) for s in got.samples}
    assert metrics == {("temp", "Cel"), ("vcc", "V")}
    assert {s.attributes.get("sensor.id") for s in got.samples if s.metric == "temp"} == {"lm35"}
