"""The serial source against real pseudo-terminals and pyserial URL handlers (no mocked Serial)."""

from __future__ import annotations

import os
import socket
import termios
import threading
import time
from pathlib import Path

import pytest

from edgecollect.configtypes import Duration
from edgecollect.sources.serial import SerialConfig, SerialSource
from edgecollect.sources.serial.framing import slf1
from edgecollect.sources.serial.port import LineSplitter, close_port, open_port, read_chunk
from tests.sources.serial.serial_helpers import Collected, Pty, counters, frames, make_ctx, running

pytestmark = pytest.mark.integration


def frame(seq: int, dev: str = "pty-01", **values: str) -> bytes:
    return slf1.encode("D", dev, seq, 1000 + seq * 10, list(values.items()) or [("seq", str(seq))])


def opens(ctx: object) -> int:
    return counters(ctx).get("port_opens", {}).get("", 0)  # type: ignore[arg-type]


def test_pty_end_to_end_names_units_attributes(tmp_path: Path) -> None:
    pty = Pty(tmp_path / "ttyUSB-bridge")
    pty.plug()
    ctx = make_ctx()
    got = Collected(ctx)
    cfg = SerialConfig(port=str(tmp_path / "ttyUSB-*"), prefix="gh.", units={"gh.co2": "ppm"})
    try:
        with running(cfg, ctx):
            got.wait_for(lambda c: opens(ctx) == 1, what="port open")
            pty.write(b"half a line from before we looked\r\n")  # the first (partial) line is discarded
            pty.write(slf1.encode("I", "esp32-a4cf12", 0, 5, [("fw", "1.2"), ("units", "temp:Cel;hum:%")]))
            pty.write(
                slf1.encode("D", "esp32-a4cf12", 1, 10, [("temp.ds0", "21.5"), ("hum", "40"), ("co2", "415")])
            )
            got.wait_for(lambda c: len(c.samples) == 3, what="3 samples")
    finally:
        pty.unplug()
    view = {(s.metric, s.unit, tuple(sorted(s.attributes.items())), s.value) for s in got.samples}
    dev = ("device.id", "esp32-a4cf12")
    assert view == {
        ("gh.temp", "Cel", (dev, ("sensor.id", "ds0")), 21.5),
        ("gh.hum", "%", (dev,), 40),
        ("gh.co2", "ppm", (dev,), 415),
    }
    assert frames(ctx) == {"ok": 2}
    assert any("device hello" in str(r.body) for r in got.logs)


def test_line_format_discards_the_first_partial_line_after_open(tmp_path: Path) -> None:
    master, slave = os.openpty()
    ctx = make_ctx()
    got = Collected(ctx)
    cfg = SerialConfig(port=os.ttyname(slave), framing="csv", header=("temp", "hum"))
    try:
        with running(cfg, ctx):
            got.wait_for(lambda c: opens(ctx) == 1, what="port open")
            os.write(master, b"5,40\r\n21.5,41\r\n22.0,42\r\n")
            got.wait_for(lambda c: len(c.samples) == 4, what="two csv lines")
    finally:
        os.close(master)
        os.close(slave)
    assert [s.value for s in got.samples] == [21.5, 41, 22.0, 42]


def test_device_log_lines_become_log_records_not_rejects(tmp_path: Path) -> None:
    master, slave = os.openpty()
    ctx = make_ctx()
    got = Collected(ctx)
    lines = [
        b"Guru Meditation Error: Core  1 panic'ed (LoadProhibited). Exception was unhandled.",
        b"Traceback (most recent call last):",
        b'  File "main.py", line 12, in <module>',
        b"OSError: [Errno 19] ENODEV",
        b"ets Jun  8 2016 00:22:57",
        b"random chatter",
    ]
    try:
        with running(SerialConfig(port=os.ttyname(slave)), ctx):
            got.wait_for(lambda c: opens(ctx) == 1, what="port open")
            os.write(master, b"\n" + b"\r\n".join(lines) + b"\r\n" + frame(0))
            got.wait_for(lambda c: len(c.samples) == 1, what="the frame after the log lines")
    finally:
        os.close(master)
        os.close(slave)
    records = [(str(r.body), r.severity_text) for r in got.logs if dict(r.attributes).get("serial.port")]
    assert records == [
        (lines[0].decode(), "ERROR"),
        (lines[1].decode(), "ERROR"),
        (lines[2].decode(), "INFO"),
        (lines[3].decode(), "ERROR"),
        (lines[4].decode(), "INFO"),
    ]
    assert counters(ctx)["log_lines"] == {"": 5}
    assert frames(ctx) == {"ok": 1, "no_start": 1}


def test_open_clears_hupcl_and_leaves_modem_lines_to_the_kernel() -> None:
    master, slave = os.openpty()
    try:
        port = open_port(SerialConfig(port="x", baud=9600), os.ttyname(slave))
        try:
            assert port.dsrdtr is True  # pyserial skips its DTR update at open
            assert not termios.tcgetattr(port.fd)[2] & termios.HUPCL
            assert port.baudrate == 9600
        finally:
            close_port(port)
    finally:
        os.close(master)
        os.close(slave)


def test_loop_url_round_trip_through_the_splitter() -> None:
    port = open_port(SerialConfig(port="loop://"), "loop://")
    try:
        port.write(b"junk\n" + frame(0) + frame(1)[:10])
        splitter = LineSplitter(255, ord("$"))
        lines: list[bytes] = []
        while len(lines) < 1:
            lines += splitter.feed(read_chunk(port))
        assert lines == [frame(0).rstrip(b"\r\n")]
    finally:
        close_port(port)


def test_parser_exception_is_counted_and_the_thread_lives_on() -> None:
    ctx = make_ctx()
    source = SerialSource(SerialConfig(port="loop://"), ctx)

    class Broken:
        def parse(self, line: bytes, time_ns: int) -> object:
            raise RuntimeError("bug")

    real = source._parser
    source._parser = Broken()  # type: ignore[assignment]
    splitter = LineSplitter(255, ord("$"))
    source.feed(splitter, b"\n" + frame(0))
    source._parser = real
    source.feed(splitter, frame(1))
    assert frames(ctx) == {"field": 1, "ok": 1}


def test_hot_plug_20_times_recovers_and_loses_nothing_written_while_open(tmp_path: Path) -> None:
    pty = Pty(tmp_path / "ttyACM-board")
    ctx = make_ctx()
    got = Collected(ctx)
    cfg = SerialConfig(port=str(pty.link), reopen_backoff_max=Duration(1.0))
    seq = 0
    received_per_cycle: list[list[int]] = []
    recovery_s: list[float] = []
    with running(cfg, ctx):
        got.wait_for(
            lambda c: counters(ctx).get("port_errors", {}).get("absent", 0) >= 1, what="absent at boot"
        )
        for cycle in range(20):
            pty.plug()
            plugged_at = time.monotonic()
            first_seq = seq
            # Write until a frame of this cycle arrives: that proves the port is open again.
            while True:
                pty.write(frame(seq))
                seq += 1
                got.pull()
                if any(s.value >= first_seq for s in got.samples):
                    break
                if time.monotonic() - plugged_at > 10:
                    raise AssertionError(f"cycle {cycle}: no frame within 10 s; {counters(ctx)}")
                time.sleep(0.005)
            recovery_s.append(time.monotonic() - plugged_at)
            open_from = seq  # everything from here on is written while the port is certainly open
            for _ in range(25):
                pty.write(frame(seq))
                seq += 1
            last = seq - 1
            got.wait_for(
                lambda c, last=last: any(s.value == last for s in c.samples), what=f"cycle {cycle} end"
            )
            values = sorted(int(s.value) for s in got.samples if s.value >= first_seq)
            received_per_cycle.append(values)
            assert set(range(open_from, last + 1)) <= set(values), f"cycle {cycle} lost frames while open"
            pty.unplug()
            time.sleep(0.05)  # unplugged for a moment: the source sees the port vanish
    assert len(received_per_cycle) == 20
    assert opens(ctx) == 20
    assert counters(ctx)["port_errors"].get("read", 0) >= 19  # every unplug was noticed as a lost port
    assert frames(ctx).get("crc", 0) == 0 and frames(ctx).get("no_crc", 0) == 0
    print(f"hot-plug recovery after replug: max {max(recovery_s):.3f} s, mean {sum(recovery_s) / 20:.3f} s")


class TcpDevice:
    """A serial-over-TCP bridge (ser2net-like) the source reaches through pyserial's socket://."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]

    def accept(self) -> socket.socket:
        self.server.settimeout(10)
        conn, _ = self.server.accept()
        return conn


def test_socket_url_nmea_and_reconnect_after_the_peer_drops() -> None:
    device = TcpDevice()
    ctx = make_ctx()
    got = Collected(ctx)
    cfg = SerialConfig(port=f"socket://127.0.0.1:{device.port}", framing="nmea")
    gga = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
    nofix = b"$GPGGA,235947.000,,,,,0,00,99.99,,,,,,*58\r\n"
    try:
        with running(cfg, ctx):
            for round_ in range(3):
                conn = device.accept()
                # pyserial drains the input at open; send once the source counted the open
                got.wait_for(lambda c, n=round_ + 1: opens(ctx) == n, what="connected")
                conn.sendall(b"\r\n" + gga + nofix + gga[:-4] + b"00\r\n")
                got.wait_for(
                    lambda c, n=round_ + 1: sum(s.metric == "gps.latitude" for s in c.samples) == n,
                    what="a position",
                )
                got.wait_for(lambda c, n=round_ + 1: frames(ctx).get("crc", 0) == n, what="the bad checksum")
                conn.close()
    finally:
        device.server.close()
    lats = [s.value for s in got.samples if s.metric == "gps.latitude"]
    assert lats == [pytest.approx(48.1173)] * 3
    assert [s.value for s in got.samples if s.metric == "gps.fix_quality"] == [1, 0] * 3
    assert frames(ctx) == {"ok": 6, "crc": 3}
    assert opens(ctx) == 3


def test_stop_returns_promptly_even_while_the_device_is_absent(tmp_path: Path) -> None:
    ctx = make_ctx()
    done = threading.Event()
    source = SerialSource(SerialConfig(port=str(tmp_path / "nothing")), ctx)
    thread = threading.Thread(target=lambda: (source.run(), done.set()), daemon=True)
    thread.start()
    got = Collected(ctx)
    got.wait_for(lambda c: counters(ctx).get("port_errors", {}).get("absent", 0) >= 3, what="three retries")
    ctx.stop.set()
    assert done.wait(10), "run() did not return after stop"
    got.pull()
    warnings = [str(r.body) for r in got.logs]
    assert len([w for w in warnings if "not present" in w]) == 1  # reported once, not per retry


def test_unexpected_error_in_the_read_path_reopens_the_port() -> None:
    master, slave = os.openpty()
    ctx = make_ctx()
    got = Collected(ctx)
    try:
        with running(SerialConfig(port=os.ttyname(slave)), ctx) as source:
            real = source.feed
            calls = [0]

            def flaky(splitter: LineSplitter, data: bytes) -> None:
                calls[0] += 1
                if calls[0] == 1:
                    raise RuntimeError("bug in the read path")
                real(splitter, data)

            source.feed = flaky  # type: ignore[method-assign]
            got.wait_for(lambda c: opens(ctx) == 1, what="open")
            os.write(master, b"x\n")
            got.wait_for(lambda c: opens(ctx) == 2, what="reopen after the error")
            os.write(master, b"\n" + frame(0))
            got.wait_for(lambda c: len(c.samples) == 1, what="a frame after the reopen")
    finally:
        os.close(master)
        os.close(slave)
    assert counters(ctx)["port_errors"] == {"internal": 1}
