"""The library edge: one pymodbus synchronous client per bus, every result turned into an outcome.

`Bus.read()` never raises for anything the wire or the device can do: it returns `Reply(outcome,
values)`, where outcome is one of OUTCOMES. pymodbus retries are off (retries=0): the source
decides what a failure costs (backoff), and a retry on a shared RS-485 bus is time stolen from the
other devices. Inter-frame timing (the 3.5-character silence) is left to pymodbus.

A CRC error does not reach us from pymodbus as such: its RTU framer drops a frame with a bad CRC
and keeps waiting until the timeout. So the bytes received during the request are watched through
the client's packet trace; a timeout after bytes that end in a wrong CRC is counted as `crc`.

pymodbus logs every timeout at ERROR; its logger is lowered to CRITICAL here, because this source
logs once per change of a device's state instead (and counts everything).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.framer import FramerRTU

from edgecollect.sources.modbus.config import ModbusConfig, tcp_address

# Exception codes (Modbus application protocol §7) -> the reason counted.
EXCEPTION_REASONS = {
    1: "illegal_function",
    2: "illegal_address",
    3: "illegal_value",
    4: "device_failure",
    5: "acknowledge",
    6: "device_busy",
    10: "gateway_path_unavailable",
    11: "gateway_no_response",
}
OUTCOMES = ("ok", "timeout", "crc", "connect", "bad_response", "exception_other", *EXCEPTION_REASONS.values())
# The device did not answer at all: these make it back off.
SILENT = frozenset({"timeout", "crc", "connect", "gateway_no_response", "gateway_path_unavailable"})

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
logging.getLogger("pymodbus.logging").setLevel(logging.CRITICAL)


@dataclass(frozen=True, slots=True)
class Reply:
    outcome: str
    values: list[int] | list[bool] | None = None
    detail: str = ""


class Bus:
    """One pymodbus client; reconnects on demand (pymodbus connects inside each request)."""

    def __init__(self, cfg: ModbusConfig) -> None:
        self._rtu = cfg.transport == "rtu"
        self._received = b""
        self._client: Any
        if self._rtu:
            self._client = ModbusSerialClient(
                cfg.port, baudrate=cfg.baud, parity=cfg.parity, stopbits=cfg.stopbits,
                bytesize=cfg.bytesize, timeout=cfg.timeout, retries=0, trace_packet=self._trace,
            )
        else:
            host, port = tcp_address(cfg.endpoint)
            self._client = ModbusTcpClient(host, port=port, timeout=cfg.timeout, retries=0, trace_packet=self._trace)

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._received = data  # pymodbus passes the whole buffer received so far
        return data

    def read(self, kind: str, unit: int, address: int, count: int) -> Reply:
        self._received = b""
        call = {
            "holding": self._client.read_holding_registers,
            "input": self._client.read_input_registers,
            "coil": self._client.read_coils,
            "discrete": self._client.read_discrete_inputs,
        }[kind]
        try:
            response = call(address, count=count, device_id=unit)
        except ConnectionException as exc:
            self.close()
            return Reply("connect", detail=str(exc))
        except ModbusIOException as exc:
            return Reply(self._silence_reason(), detail=str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever the library raises, the bus thread goes on
            self.close()
            return Reply("bad_response", detail=f"{type(exc).__name__}: {exc}")
        if response is None:
            return Reply("timeout")
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            return Reply(EXCEPTION_REASONS.get(code, "exception_other"), detail=f"exception code {code}")
        values: list[int] | list[bool] = (
            list(response.bits) if kind in ("coil", "discrete") else list(response.registers)
        )
        if len(values) < count:
            return Reply("bad_response", detail=f"{len(values)} of {count} values")
        return Reply("ok", values[:count])

    def _silence_reason(self) -> str:
        data = self._received
        if self._rtu and len(data) >= 4:
            crc = int.from_bytes(data[-2:], "big")
            if not FramerRTU.check_CRC(data[:-2], crc):
                return "crc"
        return "timeout"

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a broken port must not end the source
            return
