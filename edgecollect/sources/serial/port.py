"""Serial ports: finding one by path, glob or URL; opening it without resetting the board; cutting
the byte stream into bounded lines (the backoff between reopen attempts is SourceContext's).

Never toggles DTR/RTS: USB-serial boards (ESP32 auto-reset, Arduino Uno's DTR capacitor) reset on
those edges. pyserial is told `dsrdtr=True` so it leaves DTR as the kernel set it at open, RTS is
re-asserted to the level the kernel already gave it, and HUPCL is cleared so closing the port does
not drop the lines either (the next open then sees no edge).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import struct
import termios
from typing import Any

import serial
from serial.urlhandler import protocol_socket

from edgecollect.errors import SourceFault
from edgecollect.sources.serial.config import SerialConfig

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
_STOPBITS = {1: serial.STOPBITS_ONE, 2: serial.STOPBITS_TWO}
_GLOB_CHARS = frozenset("*?[")
READ_MAX = 4096


def resolve_port(spec: str) -> str | None:
    """The device to open now: a URL as given, the first match of a glob, or an existing path."""
    if "://" in spec:
        return spec
    if _GLOB_CHARS & set(spec):
        matches = sorted(glob.glob(spec))
        return matches[0] if matches else None
    return spec if os.path.exists(spec) else None


class _SocketPort(protocol_socket.Serial):  # type: ignore[misc]  # pyserial is untyped
    """pyserial's `socket://` port, minus two habits that lose or slow down a TCP serial bridge.

    Its open() drains whatever the peer already sent, as if it were a stale tty buffer; on a fresh
    connection that is live data (a ser2net-like bridge, or a device that speaks first), which was
    lost on top of the first partial line the splitter drops. Its in_waiting says 0 or 1 (a select),
    so reads went one byte per call; FIONREAD gives the real count.
    """

    _opening = False

    def open(self) -> None:
        self._opening = True
        try:
            super().open()
        finally:
            self._opening = False

    def reset_input_buffer(self) -> None:
        if not self._opening:
            super().reset_input_buffer()

    @property
    def in_waiting(self) -> int:
        sock = self._socket
        if sock is None:
            raise serial.PortNotOpenError()
        raw = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
        return int(struct.unpack("i", raw)[0])


def open_port(cfg: SerialConfig, device: str) -> Any:
    """An open pyserial port (a `serial.Serial` or URL handler); raises SourceFault on failure."""
    try:
        if device.startswith("socket://"):
            port = _SocketPort(None)
            port.port = device
        elif "://" in device:
            port = serial.serial_for_url(device, do_not_open=True)
        else:
            port = serial.Serial()
            port.port = device
        port.baudrate = cfg.baud
        port.bytesize = cfg.bytesize
        port.parity = _PARITY[cfg.parity]
        port.stopbits = _STOPBITS[cfg.stopbits]
        port.timeout = cfg.read_timeout
        port.xonxoff = False
        port.rtscts = False
        port.dsrdtr = True  # posix pyserial then skips its DTR update at open (no reset pulse)
        port.open()
    except (serial.SerialException, OSError, ValueError) as exc:
        raise SourceFault(f"cannot open {device}: {exc}") from exc
    fd = getattr(port, "fd", None)
    if isinstance(fd, int):
        try:
            attrs = termios.tcgetattr(fd)
            attrs[2] &= ~termios.HUPCL
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except termios.error:
            pass  # not a tty (a pty without termios support, a socket): nothing to keep up
    return port


def read_chunk(port: Any) -> bytes:
    """Whatever is waiting (at least one byte, or b"" after the read timeout). Raises SourceFault."""
    try:
        waiting = port.in_waiting
        data: bytes = port.read(min(max(waiting, 1), READ_MAX))
        return data
    except (serial.SerialException, OSError, ValueError, TypeError) as exc:
        # TypeError: pyserial posix read() after the fd vanished under a concurrent close
        raise SourceFault(f"read failed: {exc}") from exc


def close_port(port: Any) -> None:
    # the device may already be gone; closing is best effort
    with contextlib.suppress(serial.SerialException, OSError):
        port.close()


class LineSplitter:
    """Cuts a byte stream into lines of at most `max_line` bytes (slf1.md steps 1 and 2).

    Bytes up to the first `\\n` after open are discarded (the board was mid-line); with a start
    byte (`$` for SLF/1 and NMEA) a start byte also ends that discard, since the checksum rejects a
    partial frame anyway. A line growing past `max_line` without `\\n` is an overflow: it is dropped
    up to its last start byte, or wholly until the next `\\n`. Trailing `\\r` is removed; blank
    lines are not returned. Memory: at most `max_line` bytes buffered.
    """

    def __init__(self, max_line: int, start_byte: int | None) -> None:
        self.max_line = max_line
        self._start = bytes([start_byte]) if start_byte is not None else None
        self._buf = b""
        self._skipping = True
        self.overflows = 0

    def feed(self, data: bytes) -> list[bytes]:
        if self._skipping:
            data = self._skip(data)
            if not data:
                return []
        if self._buf:
            data = self._buf + data
        lines = data.split(b"\n")
        rest = lines.pop()
        out: list[bytes] = []
        for line in lines:
            if len(line) > self.max_line + 1:  # +1: the \r before \n is not part of the frame budget
                trimmed = self._trim(line)
                if trimmed is None:
                    continue
                line = trimmed
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                out.append(line)
        if len(rest) > self.max_line:
            trimmed = self._trim(rest)
            if trimmed is None:
                self._buf = b""
                self._skipping = True
            else:
                self._buf = trimmed
        else:
            self._buf = rest
        return out

    def _trim(self, line: bytes) -> bytes | None:
        self.overflows += 1
        if self._start is not None:
            p = line.rfind(self._start)
            if p > 0 and len(line) - p <= self.max_line:
                return line[p:]
        return None

    def _skip(self, data: bytes) -> bytes:
        nl = data.find(b"\n")
        st = data.find(self._start) if self._start is not None else -1
        if nl < 0 and st < 0:
            return b""
        self._skipping = False
        if st >= 0 and (nl < 0 or st < nl):
            return data[st:]
        return data[nl + 1 :]

