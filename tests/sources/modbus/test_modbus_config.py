"""[[sources.modbus]] config: FILE:LINE errors for every rule, request planning and decoding vectors.
Pure: no server, no pymodbus import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgecollect.config import loads
from edgecollect.errors import ConfigError
from edgecollect.sources.modbus.config import DeviceConfig, RegisterConfig
from edgecollect.sources.modbus.plan import decode, plan, words_to_bytes

REPO = Path(__file__).resolve().parents[3]
R = RegisterConfig

HEAD = """\
[[sources.modbus]]
name = "meter"
{transport}
  [[sources.modbus.devices]]
  unit = {unit}
  registers = [
    {register},
  ]
"""


def config(register: str = '{ metric = "p", address = 0 }', unit: int = 1,
           transport: str = 'endpoint = "127.0.0.1:502"') -> str:
    return HEAD.format(register=register, unit=unit, transport=transport)


def test_the_issue_example_loads() -> None:
    cfg = loads("""
[[sources.modbus]]
name = "meter"
endpoint = "192.168.1.20:502"
interval = "10s"
  [[sources.modbus.devices]]
  unit = 1
  registers = [
    { metric = "power.active", address = 12, kind = "input", type = "float32", unit = "W" },
{ metric = "energy.import", address = 72, kind = "input", type = "float32", unit = "kW.h", metric_kind = "cumulative" },
    { metric = "status.alarm", address = 3, kind = "holding", type = "uint16", bit = 4 },
    { metric = "flow", address = 100, type = "int32", word_order = "little", scale = 0.01, unit = "L/min" },
  ]
""")
    (bus,) = cfg.sources.modbus
    assert bus.transport == "tcp" and bus.interval == 10.0
    regs = {r.metric: r for r in bus.devices[0].registers}
    assert regs["energy.import"].metric_kind == "cumulative" and regs["status.alarm"].bit == 4
    assert regs["flow"].words == 2 and regs["power.active"].kind == "input"


@pytest.mark.parametrize(
    ("text", "line", "key", "expected"),
    [
        (config(unit=300), 5, "sources.modbus[0].devices[0].unit", "an integer from 0 to 255"),
        (config('{ metric = "p", address = 70000 }'), 7, "registers[0].address", "an integer from 0 to 65_535"),
        (config('{ metric = "p", address = 65535, type = "float32" }'), 7, "registers[0].address",
         "at most 65534"),
        (config('{ metric = "p", address = 0, type = "float32", bit = 3 }'), 7, "registers[0].bit",
         "integer type"),
        (config('{ metric = "p", address = 0, type = "uint16", bit = 16 }'), 7, "registers[0].bit", "0..15"),
        (config('{ metric = "p", address = 0, kind = "coil", type = "float32" }'), 7, "registers[0].type",
         "bool (or unset) for a coil"),
        (config('{ metric = "p", address = 0, bit = 1, scale = 0.1 }'), 7, "registers[0].scale", "1 and offset 0"),
        (config('{ metric = "p", address = 0, kind = "register" }'), 7, "registers[0].kind", "one of 'holding'"),
        (config('{ metric = "a", address = 0, type = "uint32" }, { metric = "b", address = 1 }'), 6,
         "devices[0].registers", "without overlaps: 'a' (holding 0, 2 registers) and 'b'"),
        (config('{ metric = "a", address = 0 }, { metric = "a", address = 1 }'), 6, "devices[0].registers",
         "one per metric and attributes"),
        (config(transport='endpoint = "h:502"\nport = "/dev/ttyUSB0"'), 3, "sources.modbus[0].endpoint", "not both"),
        (config(transport=""), 1, "sources.modbus[0].endpoint", "or port for RTU"),
        (config(transport='endpoint = "h:99999"'), 3, "sources.modbus[0].endpoint", '"host:port"'),
        (config(transport='port = "/dev/ttyUSB0"\nparity = "X"'), 4, "sources.modbus[0].parity", "one of 'N'"),
        ('[[sources.modbus]]\nname = "m"\nendpoint = "h"\n'
         '[[sources.modbus.devices]]\nunit = 1\nregisters = [{ metric = "p", address = 0 }]\n'
         '[[sources.modbus.devices]]\nunit = 1\nregisters = [{ metric = "p", address = 0 }]\n', 4,
         "sources.modbus[0].devices", "distinct unit ids"),
    ],
)
def test_config_errors_name_file_line_key_and_rule(text: str, line: int, key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(text, "gw.toml")
    message = str(err.value)
    assert message.startswith(f"gw.toml:{line}: "), message
    assert key in message and expected in message, message


def test_bit_fields_of_one_status_word_may_share_it() -> None:
    device = DeviceConfig(1, (R("alarm", 3, bit=4), R("fault", 3, bit=5), R("run", 3, bit=0)))
    assert plan(device.registers, 8)[0].count == 1


def test_plan_merges_within_the_gap_rule_and_the_protocol_limits() -> None:
    coils = tuple(R(f"c{a}", a, kind="coil") for a in range(0, 2001, 100))
    regs = (R("a", 0), R("b", 124), R("c", 125), R("d", 3, kind="input"), *coils)
    reads = [(r.kind, r.address, r.count) for r in plan(regs, 125)]
    assert reads == [("holding", 0, 125), ("holding", 125, 1), ("input", 3, 1), ("coil", 0, 1901), ("coil", 2000, 1)]
    assert [(r.address, r.count) for r in plan((R("a", 0), R("b", 9), R("c", 19)), 8)] == [(0, 10), (19, 1)]


@pytest.mark.parametrize(
    ("words", "word_order", "byte_order", "expected"),
    [
        ([0x0102, 0x0304], "big", "big", bytes([1, 2, 3, 4])),
        ([0x0304, 0x0102], "little", "big", bytes([1, 2, 3, 4])),
        ([0x0201, 0x0403], "big", "little", bytes([1, 2, 3, 4])),
        ([0x0403, 0x0201], "little", "little", bytes([1, 2, 3, 4])),
    ],
)
def test_word_and_byte_orders_abcd_cdab_badc_dcba(words: list[int], word_order: str, byte_order: str,
                                                  expected: bytes) -> None:
    assert words_to_bytes(words, word_order, byte_order) == expected


def test_decode_scales_signed_values_and_extracts_bits_of_negative_words() -> None:
    assert decode(R("t", 10, type="int16", scale=0.1, offset=1.0), [0, 0xFF9C], 9) == pytest.approx(-9.0)
    assert decode(R("b", 0, type="int16", bit=15), [0x8000], 0) == 1
    assert decode(R("b", 0, type="int16", bit=14), [0x8000], 0) == 0
    assert decode(R("c", 7, kind="discrete"), [False] * 7 + [True], 0) == 1


def test_check_config_does_not_import_pymodbus() -> None:
    code = (
        "import sys; from edgecollect.config import loads; "
        f"loads({config()!r}); print('pymodbus' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False"


def test_the_second_register_of_a_multi_line_array_gets_its_own_line() -> None:
    text = config('{ metric = "ok", address = 0 },\n    { metric = "bad", address = 1, type = "float64", bit = 2 }')
    with pytest.raises(ConfigError) as err:
        loads(text, "gw.toml")
    assert str(err.value).startswith("gw.toml:8: sources.modbus[0].devices[0].registers[1].bit: expected"), err.value


def test_registers_as_tables_get_their_own_line_in_errors() -> None:
    text = """\
[[sources.modbus]]
name = "probe"
port = "/dev/ttyUSB0"
[[sources.modbus.devices]]
unit = 3
[[sources.modbus.devices.registers]]
metric = "hw.temperature"
address = 1
[[sources.modbus.devices.registers]]
metric = "sensor.humidity"
address = 2
type = "float32"
bit = 1
"""
    with pytest.raises(ConfigError) as err:
        loads(text, "probe.toml")
    where = "probe.toml:13: sources.modbus[0].devices[0].registers[1].bit: expected"
    assert str(err.value).startswith(where), err.value
    fixed = loads(text.replace("bit = 1\n", ""), "probe.toml")
    assert [r.metric for r in fixed.sources.modbus[0].devices[0].registers] == ["hw.temperature", "sensor.humidity"]
