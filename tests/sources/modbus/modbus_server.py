"""A real pymodbus server (TCP on a free loopback port, or RTU on one end of a socat pty pair) in a
background thread, with faults switched on per unit while it runs:

    dead      the unit never answers (its response is not sent): a timeout at the client
    crc       the response leaves with its CRC bytes flipped (RTU)
    busy      the unit answers every read with exception 6 (device busy)

Every request the server decodes is logged (unit, function code, address, count), so tests count
requests at the server, not at the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


@dataclass(frozen=True)
class Request:
    unit: int
    function: int
    address: int
    count: int


@dataclass
class Faults:
    dead: set[int] = field(default_factory=set)
    crc: set[int] = field(default_factory=set)
    busy: set[int] = field(default_factory=set)


def registers(address: int, words: list[int]) -> SimData:
    return SimData(address, values=words, datatype=DataType.REGISTERS)


def typed(address: int, value: int | float, datatype: DataType) -> SimData:
    return SimData(address, values=value, datatype=datatype)


def bits(address: int, values: list[bool]) -> SimData:
    return SimData(address, values=values, datatype=DataType.BITS)


class Server:
    """Start with `serve_tcp(...)` or `serve_rtu(...)`; `requests` is the log, `faults` the switches."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.faults = Faults()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modbus-server", daemon=True)
        self._thread.start()
        self._server: Any = None
        self._lock = threading.Lock()

    def _device(
        self, unit: int, hr: list[SimData], ir: list[SimData], co: list[SimData], di: list[SimData]
    ) -> SimDevice:
        # Separate blocks per kind, as most meters have; each needs at least one entry.
        blocks = (co or [bits(0, [False] * 16)], di or [bits(0, [False] * 16)],
                  hr or [registers(0, [0])], ir or [registers(0, [0])])
        return SimDevice(unit, simdata=blocks, action=functools.partial(self._action, unit))

    async def _action(self, unit: int, *_args: object) -> ExcCodes | None:
        return ExcCodes.DEVICE_BUSY if unit in self.faults.busy else None

    def _trace_pdu(self, sending: bool, pdu: Any) -> Any:
        if not sending:
            with self._lock:
                self.requests.append(Request(pdu.dev_id, pdu.function_code, getattr(pdu, "address", -1),
                                             getattr(pdu, "count", -1)))
        return pdu

    def _trace_packet_rtu(self, sending: bool, data: bytes) -> bytes:
        if sending and data:
            if data[0] in self.faults.dead:
                return b""
            if data[0] in self.faults.crc:
                return data[:-2] + bytes((data[-2] ^ 0xFF, data[-1] ^ 0x55))
        return data

    def _trace_packet_tcp(self, sending: bool, data: bytes) -> bytes:
        if sending and len(data) > 6 and data[6] in self.faults.dead:
            return b""
        return data

    def _start(self, make: Any) -> None:
        async def start() -> Any:
            server = make()
            await server.serve_forever(background=True)
            return server

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def serve_tcp(self, devices: list[SimDevice], port: int) -> None:
        self._start(lambda: ModbusTcpServer(
            devices, address=("127.0.0.1", port), trace_pdu=self._trace_pdu, trace_packet=self._trace_packet_tcp,
        ))

    def serve_rtu(self, devices: list[SimDevice], port: str, baud: int = 115200, parity: str = "N") -> None:
        self._start(lambda: ModbusSerialServer(
            devices, port=port, baudrate=baud, parity=parity,
            trace_pdu=self._trace_pdu, trace_packet=self._trace_packet_rtu,
        ))

    def device(self, unit: int, *, hr: list[SimData] | None = None, ir: list[SimData] | None = None,
               co: list[SimData] | None = None, di: list[SimData] | None = None) -> SimDevice:
        return self._device(unit, hr or [], ir or [], co or [], di or [])

    def stop_serving(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
            self._server = None

    def close(self) -> None:
        self.stop_serving()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def count(self, unit: int | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if unit is None or r.unit == unit)


@contextlib.contextmanager
def pty_pair(tmp: Path) -> Iterator[tuple[str, str]]:
    """Two linked ptys made by socat: what is written to one is read from the other."""
    socat = shutil.which("socat")
    assert socat, "socat is missing: run tests/setup.sh"
    a, b = str(tmp / "bus-master"), str(tmp / "bus-devices")
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(a) and os.path.exists(b)):
            assert time.monotonic() < deadline, "socat made no pty pair"
            time.sleep(0.02)
        yield a, b
    finally:
        proc.terminate()
        proc.wait(10)
