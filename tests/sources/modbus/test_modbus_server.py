"""ModbusSource against real pymodbus servers: TCP on a free loopback port, RTU over a socat pty
pair. Known values of every type and word/byte order, exceptions, timeouts, CRC errors, a device
that disappears and comes back, a shared bus with a dead unit, and requests counted at the server."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecollect.config import load
from edgecollect.sources.modbus.config import DeviceConfig, ModbusConfig, RegisterConfig
from edgecollect.sources.modbus.source import ModbusSource
from tests.sources.modbus.modbus_helpers import Collected, make_ctx, requests, running
from tests.sources.modbus.modbus_server import DataType, Server, bits, pty_pair, registers, typed
from tests.support.ports import free_port

pytestmark = pytest.mark.integration


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


# (register config, expected value). Words for the non-default orders are written out by hand from
# the byte layouts (ABCD = big/big), not computed by the code under test.
R = RegisterConfig
EVERY_TYPE: list[tuple[RegisterConfig, int | float]] = [
    (R("t.int16", 0, type="int16"), -12345),
    (R("t.uint16", 1, type="uint16"), 54321),
    (R("t.int32", 2, type="int32"), -123456789),
    (R("t.uint32", 4, type="uint32"), 3_000_000_000),
    (R("t.int64", 6, type="int64"), -1_234_567_890_123),
    (R("t.uint64", 10, type="uint64"), 9_000_000_000_000_000_001),
    (R("t.uint64.huge", 43, type="uint64"), float(18_000_000_000_000_000_000)),  # beyond int64: a float
    (R("t.float32", 14, type="float32"), f32(123.456)),
    (R("t.float64", 16, type="float64"), -9876.54321),
    (R("o.float32.cdab", 20, type="float32", word_order="little"), f32(123.456)),
    (R("o.float32.badc", 22, type="float32", byte_order="little"), f32(123.456)),
    (R("o.float32.dcba", 24, type="float32", word_order="little", byte_order="little"), f32(123.456)),
    (R("o.int32.cdab", 26, type="int32", word_order="little"), -123456789),
    (R("o.uint64.little", 28, type="uint64", word_order="little"), 0x0102030405060708),
    (R("o.float64.little", 32, type="float64", word_order="little"), 1.5),
    (R("o.int16.badc", 36, type="int16", byte_order="little"), 0x1234),
    (R("s.bit2", 37, type="uint16", bit=2), 1),
    (R("s.bit3", 37, type="uint16", bit=3), 0),
    (R("s.bit4", 37, type="uint16", bit=4), 1),
    (R("v.scaled", 38, type="uint16", scale=0.01, offset=-5.0, unit="Cel"), 2500 * 0.01 - 5.0),
    (R("v.bool.on", 39, type="bool"), 1),
    (R("v.bool.off", 40, type="bool"), 0),
    (R("s.int32.bit20", 41, type="int32", bit=20), 1),
    (R("in.voltage", 100, kind="input", type="float32", unit="V", attributes={"electrical.phase": "L1"}), f32(230.5)),
    (R("in.energy", 102, kind="input", type="uint32", scale=0.001, unit="kW.h", metric_kind="cumulative"), 123456.789),
    (R("co.relay1", 1, kind="coil"), 0),
    (R("co.relay3", 3, kind="coil"), 1),
    (R("di.door", 5, kind="discrete"), 1),
]


def every_type_device(server: Server, unit: int) -> object:
    hr = [
        typed(0, -12345, DataType.INT16), typed(1, 54321, DataType.UINT16), typed(2, -123456789, DataType.INT32),
        typed(4, 3_000_000_000, DataType.UINT32), typed(6, -1_234_567_890_123, DataType.INT64),
        typed(10, 9_000_000_000_000_000_001, DataType.UINT64), typed(14, 123.456, DataType.FLOAT32),
        typed(16, -9876.54321, DataType.FLOAT64),
        registers(20, [0xE979, 0x42F6]),  # 123.456 = 42 F6 E9 79, words swapped (CDAB)
        registers(22, [0xF642, 0x79E9]),  # bytes swapped in each word (BADC)
        registers(24, [0x79E9, 0xF642]),  # both (DCBA)
        registers(26, [0x32EB, 0xF8A4]),  # -123456789 = F8 A4 32 EB, CDAB
        registers(28, [0x0708, 0x0506, 0x0304, 0x0102]),
        registers(32, [0x0000, 0x0000, 0x0000, 0x3FF8]),  # 1.5 = 3FF8 0000 0000 0000, word-reversed
        registers(36, [0x3412]),
        registers(37, [0b0000_0000_0001_0100]),
        registers(38, [2500, 0xFFFF, 0, 0x0010, 0x0000]),
        typed(43, 18_000_000_000_000_000_000, DataType.UINT64),
    ]
    ir = [typed(100, 230.5, DataType.FLOAT32), typed(102, 123456789, DataType.UINT32)]
    co = [bits(0, [False, False, False, True] + [False] * 12)]
    di = [bits(0, [False] * 5 + [True] + [False] * 10)]
    return server.device(unit, hr=hr, ir=ir, co=co, di=di)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.close()


def tcp_config(port: int, devices: tuple[DeviceConfig, ...], **kw: object) -> ModbusConfig:
    return ModbusConfig(name="plant", endpoint=f"127.0.0.1:{port}", devices=devices, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["tcp", "rtu"])
def test_reads_every_type_and_order_exactly(server: Server, transport: str, tmp_path: Path) -> None:
    device = DeviceConfig(7, tuple(reg for reg, _ in EVERY_TYPE), name="testbench")
    with pty_pair(tmp_path) as (master, slave):
        if transport == "tcp":
            port = free_port()
            server.serve_tcp([every_type_device(server, 7)], port)  # type: ignore[list-item]
            cfg = tcp_config(port, (device,), timeout=2.0)
        else:
            # (a Linux pty refuses parity bits, so the pair runs 8N1 here)
            server.serve_rtu([every_type_device(server, 7)], slave, baud=38400)  # type: ignore[list-item]
            cfg = ModbusConfig(name="plant", port=master, baud=38400, timeout=2.0, devices=(device,))
        ctx = make_ctx()
        source = ModbusSource(cfg, ctx)
        emitted = source.poll(source.devices[0])
    got = {s.metric: s for s in Collected(ctx).pull().samples}
    assert emitted == len(EVERY_TYPE)
    for reg, expected in EVERY_TYPE:
        sample = got[reg.metric]
        assert sample.value == pytest.approx(expected, rel=1e-12, abs=1e-9), reg.metric
        assert isinstance(sample.value, int) == isinstance(expected, int), reg.metric
        assert (sample.unit, sample.kind) == (reg.unit, reg.metric_kind)
        own = {"modbus.bus": "plant", "modbus.unit": 7, "modbus.device": "testbench"}
        assert sample.attributes == {**reg.attributes, **own}, reg.metric
    # holding 0..46 in one read, input 100..103, coils 1..3, discrete 5: four requests.
    asked = [(r.function, r.address, r.count) for r in server.requests]
    assert asked == [(3, 0, 47), (4, 100, 4), (1, 1, 3), (2, 5, 1)]
    assert requests(ctx) == {7: {"ok": 4}}


def test_map_with_gaps_costs_the_planned_requests_at_the_server(server: Server) -> None:
    port = free_port()
    # All of 0..299 readable: the gap rule, not the device, decides the requests.
    server.serve_tcp([server.device(1, hr=[registers(0, list(range(300)))])], port)
    regs = (*(R(f"r{a}", a) for a in (0, 3, 20, 28, 184, 200, 260)), R("wide", 144, type="uint32"))
    for max_gap, expected in (
        # 3 follows 0 after 2 unread registers (merged); 20 after 16 (split); 28 after 7 (merged);
        # 200 after 15 (split).
        (8, [(0, 4), (20, 9), (144, 2), (184, 1), (200, 1), (260, 1)]),
        (0, [(0, 1), (3, 1), (20, 1), (28, 1), (144, 2), (184, 1), (200, 1), (260, 1)]),
        (16, [(0, 29), (144, 2), (184, 17), (260, 1)]),
    ):
        server.requests.clear()
        ctx = make_ctx()
        source = ModbusSource(tcp_config(port, (DeviceConfig(1, regs, max_gap=max_gap),)), ctx)
        source.poll(source.devices[0])
        assert [(r.address, r.count) for r in server.requests] == expected, max_gap
        assert requests(ctx) == {1: {"ok": len(expected)}}
        values = {s.metric: s.value for s in Collected(ctx).pull().samples}
        assert values["r20"] == 20 and values["r200"] == 200 and values["wide"] == (144 << 16) + 145


def test_a_read_never_asks_for_more_than_125_registers(server: Server) -> None:
    port = free_port()
    server.serve_tcp([server.device(1, hr=[registers(0, list(range(400)))])], port)
    regs = tuple(R(f"r{a}", a) for a in range(0, 400, 5))
    ctx = make_ctx()
    source = ModbusSource(tcp_config(port, (DeviceConfig(1, regs),)), ctx)
    source.poll(source.devices[0])
    # 0..120 is 121 registers; taking 125 too would make 126
    assert [(r.address, r.count) for r in server.requests] == [(0, 121), (125, 121), (250, 121), (375, 21)]
    assert sorted(s.value for s in Collected(ctx).pull().samples) == list(range(0, 400, 5))


def test_exceptions_are_counted_and_logged_once_per_state_change(server: Server) -> None:
    port = free_port()
    server.serve_tcp([server.device(1, hr=[registers(0, [11, 12])], ir=[registers(0, [5])])], port)
    regs = (R("ok", 0), R("missing", 50), R("in", 0, kind="input"))
    ctx = make_ctx()
    source = ModbusSource(tcp_config(port, (DeviceConfig(1, regs),)), ctx)
    dev = source.devices[0]
    for _ in range(3):
        source.poll(dev)
    got = Collected(ctx).pull()
    assert [s.value for s in got.samples if s.metric == "ok"] == [11, 11, 11]  # the device stays read
    assert requests(ctx) == {1: {"ok": 6, "illegal_address": 3}}
    assert dev.silent_polls == 0  # an exception is an answer: no backoff
    server.faults.busy.add(1)
    for _ in range(3):
        source.poll(dev)
    assert requests(ctx)[1]["device_busy"] == 6
    server.faults.busy.clear()
    source.poll(dev)
    texts = got.pull().log_texts()
    # unknown -> illegal_address -> device_busy -> illegal_address: three changes, three lines.
    assert len(texts) == 3, texts
    assert "illegal_address" in texts[0] and "device_busy" in texts[1] and "illegal_address" in texts[2]


def test_tcp_device_that_disappears_and_comes_back(server: Server) -> None:
    port = free_port()
    server.serve_tcp([server.device(1, hr=[registers(0, [42])])], port)
    ctx = make_ctx()
    cfg = tcp_config(port, (DeviceConfig(1, (R("level", 0),)),), interval=0.1, timeout=0.5, backoff_max=0.4)
    got = Collected(ctx)
    with running(ModbusSource(cfg, ctx), ctx):
        got.wait_for(lambda c: len(c.samples) >= 3, "first readings")
        server.stop_serving()
        got.wait_for(lambda c: requests(ctx, 1)[1].get("connect", 0) + requests(ctx, 1)[1].get("timeout", 0) >= 3,
                     "failed requests while the server is gone")
        before = len(got.samples)
        server.serve_tcp([server.device(1, hr=[registers(0, [43])])], port)
        got.wait_for(lambda c: any(s.value == 43 for s in c.samples[before:]), "readings after the server is back")
    texts = got.pull().log_texts()
    assert any("answering again" in t for t in texts), texts
    # down once, up once: two lines, however many requests failed in between
    assert len(texts) == 2, texts


def test_shared_rtu_bus_with_one_dead_unit_keeps_reading_the_others(server: Server, tmp_path: Path) -> None:
    with pty_pair(tmp_path) as (master, slave):
        server.serve_rtu([server.device(u, hr=[registers(0, [u * 100])]) for u in (1, 2, 3)], slave, baud=57600)
        server.faults.dead.add(2)
        devices = tuple(DeviceConfig(u, (R("value", 0),)) for u in (1, 2, 3))
        cfg = ModbusConfig(name="rs485", port=master, baud=57600, interval=0.2, timeout=0.3, backoff_max=3.0,
                           devices=devices)
        ctx = make_ctx()
        got = Collected(ctx)
        with running(ModbusSource(cfg, ctx), ctx):
            got.wait_for(lambda c: len(c.of_unit(1)) >= 20 and len(c.of_unit(3)) >= 20, "20 readings of units 1 and 3")
            dead = requests(ctx, 2)[2]
            assert set(dead) == {"timeout"}
            # backing off: far fewer tries at the dead unit than polls of the live ones (without the
            # backoff it would be tried as often as each of them: a third of all polls)
            live = len(got.of_unit(1)) + len(got.of_unit(3))
            assert dead["timeout"] * 3 <= live, (dead, live)
            skipped = ctx.telemetry.find("edgecollect.modbus.polls_skipped", source="modbus.test", **{"modbus.unit": 2})
            assert skipped is not None and skipped.total() > 0
            server.faults.dead.clear()
            got.wait_for(lambda c: len(c.of_unit(2)) >= 1, "unit 2 read again once it answers")
        assert {s.value for s in got.of_unit(2)} == {200}
        assert requests(ctx, 1)[1].keys() == {"ok"} and requests(ctx, 3)[3].keys() == {"ok"}
        texts = got.pull().log_texts()
        assert sum("unit 2" in t for t in texts) == 2, texts  # timeout, then answering again


def test_crc_errors_are_counted_apart_from_timeouts(server: Server, tmp_path: Path) -> None:
    with pty_pair(tmp_path) as (master, slave):
        server.serve_rtu([server.device(u, hr=[registers(0, [u])]) for u in (1, 2)], slave, baud=19200)
        server.faults.crc.add(2)
        devices = tuple(DeviceConfig(u, (R("value", 0),)) for u in (1, 2))
        cfg = ModbusConfig(name="rs485", port=master, baud=19200, timeout=0.3, devices=devices)
        ctx = make_ctx()
        source = ModbusSource(cfg, ctx)
        for _ in range(2):
            for dev in source.devices:
                source.poll(dev)
        source._bus.close()
    assert requests(ctx) == {1: {"ok": 2}, 2: {"crc": 2}}
    assert [s.value for s in Collected(ctx).pull().samples] == [1, 1]


def test_a_read_across_a_hole_in_the_map_is_split_and_stays_split(server: Server) -> None:
    port = free_port()
    # 0..1 and 4..5 exist; 2..3 do not (the device answers illegal address for them).
    server.serve_tcp([server.device(1, hr=[registers(0, [10, 11]), registers(4, [14, 15])])], port)
    ctx = make_ctx()
    source = ModbusSource(tcp_config(port, (DeviceConfig(1, (R("a", 0), R("b", 5))),)), ctx)
    source.poll(source.devices[0])
    source.poll(source.devices[0])
    assert [(r.address, r.count) for r in server.requests] == [(0, 6), (0, 1), (5, 1), (0, 1), (5, 1)]
    assert [s.value for s in Collected(ctx).pull().samples] == [10, 15, 10, 15]
    assert requests(ctx) == {1: {"ok": 4, "illegal_address": 1}}


def test_the_sdm630_preset_reads_an_emulated_meter_in_two_requests(server: Server, tmp_path: Path) -> None:
    preset = load(Path(__file__).resolve().parents[3] / "configs" / "modbus-energy-meter.toml")
    bus = preset.sources.modbus[0]
    sdm630 = bus.devices[0]
    floats = {0: 231.5, 2: 229.8, 4: 230.1, 6: 1.25, 8: 0.5, 10: 2.0, 12: 280.0, 14: 110.0, 16: 455.0,
              52: 845.0, 62: 0.97, 70: 50.02, 72: 1234.5, 74: 0.25}
    ir = [typed(a, v, DataType.FLOAT32) for a, v in floats.items()]
    ir += [registers(a, [0] * 2) for a in range(18, 52, 2)] + [registers(a, [0] * 2) for a in range(54, 62, 2)]
    ir += [registers(a, [0] * 2) for a in range(64, 70, 2)]
    with pty_pair(tmp_path) as (master, slave):
        server.serve_rtu([server.device(1, ir=ir)], slave, baud=9600)
        ctx = make_ctx()
        source = ModbusSource(dataclasses.replace(bus, port=master, devices=(sdm630,)), ctx)
        source.poll(source.devices[0])
        source._bus.close()
    assert [(r.function, r.address, r.count) for r in server.requests] == [(4, 0, 18), (4, 52, 24)]
    got = {(s.metric, s.attributes.get("electrical.phase"), s.attributes.get("electrical.direction")): s
           for s in Collected(ctx).pull().samples}
    assert got[("hw.voltage", "L2", None)].value == pytest.approx(229.8, rel=1e-6)
    assert got[("hw.power", None, None)].value == 845.0
    energy = got[("hw.energy", None, "import")]
    assert (energy.value, energy.unit, energy.kind) == (pytest.approx(1234.5 * 3.6e6, rel=1e-6), "J", "cumulative")
    assert len(got) == 14


def test_the_agent_runs_a_modbus_source_from_its_config_into_the_spool(server: Server, tmp_path: Path) -> None:
    from edgecollect.config import loads
    from edgecollect.runtime import Agent
    from tests.support.wait import eventually

    port = free_port()
    server.serve_tcp([server.device(1, hr=[registers(0, [321])])], port)
    cfg = loads(f"""
[agent]
state_dir = "{tmp_path / 'state'}"
[batch]
flush_interval = "1s"
[sources.host]
enabled = false
[[sources.modbus]]
name = "meter"
endpoint = "127.0.0.1:{port}"
interval = "200ms"
  [[sources.modbus.devices]]
  unit = 1
  registers = [ {{ metric = "level", address = 0 }} ]
""")
    agent = Agent(cfg)
    assert ("modbus.meter", "modbus") in [(s.ctx.name, s.ctx.kind) for s in agent.sources]
    agent.start()
    try:
        ok = agent.telemetry.find("edgecollect.modbus.requests", source="modbus.meter", **{"modbus.unit": 1})
        assert ok is not None
        assert eventually(lambda: ok.value("ok") >= 3)
        assert eventually(lambda: agent.spool.stats().points >= 3)
    finally:
        agent.shutdown(5)


def test_a_serial_port_absent_at_start_is_counted_and_backed_off(tmp_path: Path) -> None:
    cfg = ModbusConfig(name="rs485", port=str(tmp_path / "ttyUSB9"), timeout=0.2,
                       devices=(DeviceConfig(1, (R("v", 0),)), DeviceConfig(2, (R("v", 0),))))
    ctx = make_ctx()
    source = ModbusSource(cfg, ctx)
    for dev in source.devices:
        assert source.poll(dev) == 0
    assert requests(ctx) == {1: {"connect": 1}, 2: {"connect": 1}}
    assert [d.silent_polls for d in source.devices] == [1, 1]
    assert len(Collected(ctx).pull().logs) == 2  # one line per device, not per request
