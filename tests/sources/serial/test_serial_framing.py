"""Pure parsers against golden data: SLF/1 vectors from firmware-bridges/slf1/golden.json, real
NMEA sentences, and the line formats."""

from __future__ import annotations

import binascii
import math

import pytest

from edgecollect.model import Point
from edgecollect.sources.serial import SerialConfig
from edgecollect.sources.serial.framing import make_parser, slf1
from edgecollect.sources.serial.framing._common import OUTCOMES
from tests.sources.serial.serial_helpers import b, golden

G = golden()


def enc(kind: str, dev: str, seq: int, up: int, fields: list[tuple[str, str]]) -> bytes:
    """A frame as the line splitter hands it over: without its \\r\\n."""
    return slf1.encode(kind, dev, seq, up, fields).rstrip(b"\r\n")


def view(points: tuple[Point, ...]) -> list[dict[str, object]]:
    return [
        {
            "metric": p.series.name,
            "unit": p.series.unit,
            "attributes": dict(p.series.attributes),
            "value": p.value,
        }
        for p in points
    ]


def test_crc_check_value_matches_the_spec() -> None:
    assert f"{slf1.crc16(b(G['crc_check']['input'])):04X}" == G["crc_check"]["crc16"]
    assert slf1.crc16(b"123456789") == binascii.crc_hqx(b"123456789", 0xFFFF) == 0x29B1


@pytest.mark.parametrize("vec", G["frames"], ids=[v["name"] for v in G["frames"]])
def test_golden_frame_decodes_exactly(vec: dict[str, object]) -> None:
    frame = slf1.decode(b(str(vec["frame"])))
    assert isinstance(frame, slf1.Frame), frame
    assert (frame.kind, frame.device_id, frame.seq, frame.uptime_ms) == (
        vec["kind"],
        vec["device_id"],
        vec["seq"],
        vec["uptime_ms"],
    )
    fields = [list(f) for f in vec["fields"]]  # type: ignore[attr-defined]
    if frame.kind == "D":
        expected = [
            [k, None if v == "" else (int(v) if v.lstrip("-").isdigit() else float(v))] for k, v in fields
        ]
        assert [[k, v] for k, v in frame.values] == expected
        assert all(type(v) is type(e) for (_, v), (_, e) in zip(frame.values, expected, strict=True))
    else:
        assert [[k, v] for k, v in frame.texts] == fields


@pytest.mark.parametrize("vec", G["frames"], ids=[v["name"] for v in G["frames"]])
def test_reference_encoder_reproduces_golden_frame(vec: dict[str, object]) -> None:
    fields = [tuple(f) for f in vec["fields"]]  # type: ignore[attr-defined]
    out = slf1.encode(
        str(vec["kind"]),
        str(vec["device_id"]),
        int(vec["seq"]),  # type: ignore[call-overload]
        int(vec["uptime_ms"]),
        fields,
    )  # type: ignore[call-overload]
    assert out == b(str(vec["frame"])) + b(G["line_end"])


@pytest.mark.parametrize("vec", [v for v in G["frames"] if "points" in v], ids=lambda v: v["name"])
def test_golden_data_frame_gives_named_points_with_units(vec: dict[str, object]) -> None:
    cfg = SerialConfig(port="loop://", units=G["gateway_units"])
    parser = make_parser(cfg)
    parsed = parser.parse(b(str(vec["frame"])), 0)
    assert parsed.outcome == "ok"
    assert view(parsed.points) == vec["points"]


@pytest.mark.parametrize("vec", G["rejects"], ids=[v["why"] for v in G["rejects"]])
def test_golden_reject_has_its_outcome(vec: dict[str, str]) -> None:
    assert vec["outcome"] in OUTCOMES
    parser = make_parser(SerialConfig(port="loop://"))
    parsed = parser.parse(b(vec["line"]), 0)
    assert parsed.outcome == vec["outcome"]
    assert parsed.points == () and parsed.logs == ()


@pytest.mark.parametrize("vec", G["accepts"], ids=[v["why"] for v in G["accepts"]])
def test_resync_takes_the_frame_after_the_last_dollar(vec: dict[str, str]) -> None:
    assert slf1.decode(b(vec["line"])) == slf1.decode(b(vec["frame"]))
    assert isinstance(slf1.decode(b(vec["line"])), slf1.Frame)


def test_info_frame_units_apply_to_later_data_and_config_is_the_fallback() -> None:
    parser = make_parser(SerialConfig(port="p", prefix="gh.", units={"gh.hum": "%", "co2": "ppm"}))
    d0 = parser.parse(enc("D", "dev", 0, 0, [("temp.ds0", "20"), ("hum", "40"), ("co2", "400")]), 0)
    assert [(p.series.name, p.series.unit) for p in d0.points] == [
        ("gh.temp", "1"),
        ("gh.hum", "%"),
        ("gh.co2", "ppm"),
    ]
    hello = parser.parse(enc("I", "dev", 1, 5, [("fw", "2.1"), ("units", "temp:Cel;hum:%")]), 0)
    assert hello.points == () and "fw=2.1" in str(hello.logs[0].body)
    d2 = parser.parse(enc("D", "dev", 2, 10, [("temp.ds0", "20.5")]), 0)
    assert [(p.series.name, p.series.unit, dict(p.series.attributes)) for p in d2.points] == [
        ("gh.temp", "Cel", {"device.id": "dev", "sensor.id": "ds0"})
    ]


def test_log_and_error_frames_become_log_records() -> None:
    parser = make_parser(SerialConfig(port="/dev/ttyX"))
    rec = parser.parse(b(G["frames"][2]["frame"]), 7).logs[0]
    assert (rec.body, rec.severity_text, rec.time_ns) == ("sensor,retry", "INFO", 7)
    assert dict(rec.attributes) == {"device.id": "uno-01", "serial.port": "/dev/ttyX"}
    err = parser.parse(b(G["frames"][3]["frame"]), 8).logs[0]
    assert (err.body, err.severity_text, err.severity_number) == ("code=dht_timeout", "ERROR", 17)
    warn = parser.parse(
        enc("L", "uno-01", 9, 5200, [("msg", "low battery"), ("lvl", "W"), ("vbat", "3.1")]), 9
    ).logs[0]
    assert (warn.body, warn.severity_text, dict(warn.attributes)["slf.vbat"]) == (
        "low battery",
        "WARN",
        "3.1",
    )


def test_session_counts_gaps_drops_duplicates_and_reports_reboot_and_swap() -> None:
    events: dict[str, int] = {}

    def note(name: str, n: int) -> None:
        events[name] = events.get(name, 0) + n

    parser = make_parser(SerialConfig(port="p"), note)

    def send(dev: str, seq: int, up: int) -> tuple[int, list[str]]:
        out = parser.parse(enc("D", dev, seq, up, [("x", str(seq))]), 0)
        assert out.outcome == "ok"
        return len(out.points), [str(r.body) for r in out.logs]

    assert send("a", 5, 500) == (1, [])  # first sight: no loss assumed
    assert send("a", 6, 600) == (1, [])
    n, logs = send("a", 9, 900)
    assert n == 1 and events == {"lost_frames": 2} and "lost 2 frame" in logs[0]
    assert send("a", 9, 900) == (0, [])  # duplicate dropped
    assert send("a", 8, 950) == (0, [])  # older seq, uptime not back: a replay, dropped
    assert events["duplicates"] == 2
    n, logs = send("a", 1, 20)  # seq and uptime both back: reboot, frame 0 of the new boot missed
    assert n == 1 and events["reboots"] == 1 and "rebooted" in logs[0]
    assert events["lost_frames"] == 3
    n, logs = send("b", 0, 10)
    assert n == 1 and events["board_swaps"] == 1 and "replaced by b" in logs[0]
    assert send("b", 1, 20) == (1, [])


def test_reboot_right_after_first_frame_is_a_reboot_not_a_duplicate() -> None:
    events: dict[str, int] = {}
    parser = make_parser(SerialConfig(port="p"), lambda k, n: events.__setitem__(k, events.get(k, 0) + n))
    parser.parse(enc("D", "a", 0, 900, []), 0)
    out = parser.parse(enc("D", "a", 0, 15, [("x", "1")]), 0)
    assert events == {"reboots": 1} and len(out.points) == 1


# --- NMEA: sentences captured from u-blox NEO-6M / NEO-M8N and SiRF receivers ------------------

NMEA_FIX_GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
NMEA_NOFIX_GGA = b"$GPGGA,235947.000,,,,,0,00,99.99,,,,,,*58"
NMEA_RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
NMEA_RMC_VOID = b"$GNRMC,,V,,,,,,,,,,N*4D"
NMEA_GSA = b"$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39"
NMEA_GN_GGA_SOUTH_WEST = b"$GNGGA,001043.00,3351.5230,S,15112.4430,W,2,12,0.71,27.3,M,22.1,M,,0000*7F"


def nmea_values(line: bytes) -> tuple[str, dict[str, tuple[float, str]]]:
    out = make_parser(SerialConfig(port="p", framing="nmea")).parse(line, 0)
    return out.outcome, {p.series.name: (p.value, p.series.unit) for p in out.points}


def test_nmea_checksums_of_the_fixtures_are_right() -> None:
    from edgecollect.sources.serial.framing.nmea import checksum

    for line in (NMEA_FIX_GGA, NMEA_NOFIX_GGA, NMEA_RMC, NMEA_RMC_VOID, NMEA_GSA, NMEA_GN_GGA_SOUTH_WEST):
        assert f"{checksum(line[1:-3]):02X}" == line[-2:].decode(), line


def test_nmea_gga_with_fix_gives_position_altitude_quality_sats_hdop() -> None:
    outcome, v = nmea_values(NMEA_FIX_GGA)
    assert outcome == "ok"
    assert v["gps.latitude"][0] == pytest.approx(48 + 7.038 / 60) and v["gps.latitude"][1] == "deg"
    assert v["gps.longitude"][0] == pytest.approx(11 + 31.0 / 60)
    assert v["gps.altitude"] == (545.4, "m")
    assert (
        v["gps.fix_quality"] == (1, "1") and v["gps.satellites"] == (8, "1") and v["gps.hdop"] == (0.9, "1")
    )


def test_nmea_south_and_west_are_negative() -> None:
    _, v = nmea_values(NMEA_GN_GGA_SOUTH_WEST)
    assert v["gps.latitude"][0] == pytest.approx(-(33 + 51.523 / 60))
    assert v["gps.longitude"][0] == pytest.approx(-(151 + 12.443 / 60))
    assert v["gps.fix_quality"][0] == 2 and v["gps.satellites"][0] == 12


def test_nmea_no_fix_gga_reports_quality_zero_and_no_position() -> None:
    outcome, v = nmea_values(NMEA_NOFIX_GGA)
    assert outcome == "ok"
    assert v["gps.fix_quality"] == (0, "1") and v["gps.satellites"] == (0, "1")
    assert "gps.latitude" not in v and "gps.longitude" not in v and "gps.altitude" not in v


def test_nmea_rmc_speed_is_converted_from_knots_to_metres_per_second() -> None:
    _, v = nmea_values(NMEA_RMC)
    assert v["gps.speed"][0] == pytest.approx(22.4 * 1852 / 3600) and v["gps.speed"][1] == "m/s"
    assert v["gps.course"] == (84.4, "deg")
    assert v["gps.latitude"][0] == pytest.approx(48.1173)


def test_nmea_void_rmc_gives_no_position() -> None:
    assert nmea_values(NMEA_RMC_VOID) == ("ok", {})


def test_nmea_gsa_gives_fix_type_and_dops() -> None:
    _, v = nmea_values(NMEA_GSA)
    assert v == {
        "gps.fix_type": (3, "1"),
        "gps.pdop": (2.5, "1"),
        "gps.hdop": (1.3, "1"),
        "gps.vdop": (2.1, "1"),
    }


@pytest.mark.parametrize(
    ("line", "outcome"),
    [
        (NMEA_FIX_GGA[:-2] + b"48", "crc"),
        (NMEA_FIX_GGA.replace(b"545.4", b"545.5"), "crc"),
        (NMEA_FIX_GGA[:-3], "no_crc"),
        (NMEA_FIX_GGA[1:], "no_start"),
        (b"$GPGGA,123519,4807.038,N*" + b"%02X" % 0, "crc"),
    ],
)
def test_nmea_bad_sentences_are_counted_rejects(line: bytes, outcome: str) -> None:
    assert nmea_values(line) == (outcome, {})


def test_nmea_malformed_fields_are_field_or_value_rejects() -> None:
    from edgecollect.sources.serial.framing.nmea import checksum

    def seal(body: bytes) -> bytes:
        return b"$" + body + b"*%02X" % checksum(body)

    assert nmea_values(seal(b"GPGGA,123519,4807.038,N"))[0] == "field"
    assert nmea_values(seal(b"GPGGA,123519,48x7.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))[0] == "value"
    assert nmea_values(seal(b"GPGGA,123519,4807.038,Q,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"))[0] == "value"
    assert nmea_values(seal(b"GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00")) == (
        "ok",
        {},
    )
    assert nmea_values(seal(b"gpgga,1"))[0] == "header"


# --- line formats ----------------------------------------------------------------------------


def parse(
    framing: str, line: bytes, **kw: object
) -> tuple[str, list[tuple[str, str, dict[str, object], object]]]:
    cfg = SerialConfig(port="p", framing=framing, **kw)  # type: ignore[arg-type]
    out = make_parser(cfg).parse(line, 0)
    return out.outcome, [
        (p.series.name, p.series.unit, dict(p.series.attributes), p.value) for p in out.points
    ]


def test_csv_uses_header_units_attributes_and_skips() -> None:
    kw = {"header": ("temp", "hum", "", "@sensor"), "units": {"temp": "Cel"}, "prefix": "lab."}
    assert parse("csv", b"21.5, 40,junk,ds0", **kw) == (
        "ok",
        [("lab.temp", "Cel", {"sensor": "ds0"}, 21.5), ("lab.hum", "1", {"sensor": "ds0"}, 40)],
    )
    assert parse("csv", b"21.5,,x,ds0", **kw)[1] == [("lab.temp", "Cel", {"sensor": "ds0"}, 21.5)]
    assert parse("csv", b"21.5,40", **kw) == ("field", [])
    assert parse("csv", b"21.5,forty,x,ds0", **kw) == ("value", [])


def test_kv_pairs() -> None:
    assert parse("kv", b"temp=21.5 hum=40;vbat=3.71,rssi=-67") == (
        "ok",
        [("temp", "1", {}, 21.5), ("hum", "1", {}, 40), ("vbat", "1", {}, 3.71), ("rssi", "1", {}, -67)],
    )
    assert parse("kv", b"temp=21.5 hum")[0] == "field"
    assert parse("kv", b"temp=warm")[0] == "value"
    assert parse("kv", b"temp=nan")[0] == "value"


def test_jsonl_flattens_numbers_and_takes_strings_as_attributes() -> None:
    assert parse("jsonl", b'{"temp": 21.5, "ok": true, "bme": {"p": 1013}, "id": "ds0", "x": null}') == (
        "ok",
        [
            ("temp", "1", {"id": "ds0"}, 21.5),
            ("ok", "1", {"id": "ds0"}, 1),
            ("bme.p", "1", {"id": "ds0"}, 1013),
        ],
    )
    assert parse("jsonl", b"[1, 2]")[0] == "field"
    assert parse("jsonl", b'{"temp": 21.5')[0] == "field"
    assert parse("jsonl", b'{"temp": NaN}')[0] == "value"


def test_influx_line_protocol() -> None:
    outcome, pts = parse(
        "influx", b'weather,sensor=ds0,room=a\\ b temp=21.5,n=3i,on=t,s="x y" 1700000000000000000'
    )
    assert outcome == "ok"
    attrs = {"sensor": "ds0", "room": "a b"}
    assert pts == [
        ("weather.temp", "1", attrs, 21.5),
        ("weather.n", "1", attrs, 3),
        ("weather.on", "1", attrs, 1),
    ]
    out = make_parser(SerialConfig(port="p", framing="influx")).parse(b"m v=1 1700000000000000000", 0)
    assert out.points[0].time_ns == 1700000000000000000
    assert parse("influx", b"weather temp=abc")[0] == "value"
    assert parse("influx", b"weather")[0] == "field"
    assert parse("influx", b'weather s="unterminated')[0] == "field"


def test_regex_named_groups() -> None:
    pattern = r"T:(?P<temp>-?[0-9.]+)C H:(?P<hum>[0-9.]+)%(?: id=(?P<attr_sensor>\w+))?"
    assert parse("regex", b"T:-4.5C H:88% id=north", pattern=pattern) == (
        "ok",
        [("temp", "1", {"sensor": "north"}, -4.5), ("hum", "1", {"sensor": "north"}, 88)],
    )
    assert parse("regex", b"T:-4.5C H:88%", pattern=pattern)[1][0] == ("temp", "1", {}, -4.5)
    assert parse("regex", b"hello", pattern=pattern) == ("field", [])
    assert parse("regex", b"T:1.2.3C H:1%", pattern=pattern) == ("value", [])


@pytest.mark.parametrize("framing", ["slf1", "nmea", "csv", "kv", "jsonl", "influx", "regex"])
def test_no_parser_raises_on_arbitrary_bytes(framing: str) -> None:
    import random

    rng = random.Random(framing)
    cfg = SerialConfig(port="p", framing=framing, header=("a", "b"), pattern=r"(?P<a>\d+)")  # type: ignore[arg-type]
    parser = make_parser(cfg)
    specials = b'$*,=%.:;{}[]"\\ 0123456789abcdefABCDEF-+eEnNiItTfFD\x00\xff'
    for _ in range(3000):
        line = bytes(rng.choice(specials) for _ in range(rng.randint(0, 60)))
        out = parser.parse(line, 0)
        assert out.outcome in OUTCOMES
        assert all(not isinstance(p.value, float) or math.isfinite(p.value) for p in out.points)


def test_config_rejects_meaningless_settings() -> None:
    with pytest.raises(ValueError, match="header"):
        SerialConfig(port="p", framing="csv")
    with pytest.raises(ValueError, match="pattern"):
        SerialConfig(port="p", framing="regex", pattern="(no named group)")
    with pytest.raises(ValueError, match=r"log_patterns\[0\]"):
        SerialConfig(port="p", log_patterns=("(",))
    with pytest.raises(ValueError, match="port"):
        SerialConfig(port="")
    assert SerialConfig(port="p").line_limit() == 255
    assert SerialConfig(port="p", framing="jsonl").line_limit() == 4096


# --- line splitter ----------------------------------------------------------------------------


def split_all(data: bytes, start: int | None, step: int, max_line: int = 255) -> tuple[list[bytes], int]:
    from edgecollect.sources.serial.port import LineSplitter

    splitter = LineSplitter(max_line, start)
    out: list[bytes] = []
    for i in range(0, len(data), step):
        out += splitter.feed(data[i : i + step])
    return out, splitter.overflows


@pytest.mark.parametrize("step", [1, 7, 64, 4096])
def test_splitter_discards_the_partial_first_line_and_blank_lines(step: int) -> None:
    f0 = enc("D", "a", 0, 0, [("x", "1")])
    assert split_all(b"tail of a line\r\n\r\n" + f0 + b"\r\n", None, step) == ([f0], 0)
    # with a start byte, a `$` also ends the discard: the CRC judges a partial frame anyway
    assert split_all(f0 + b"\r\n", ord("$"), step) == ([f0], 0)
    assert split_all(b"ail" + f0 + b"\r\n", ord("$"), step) == ([f0], 0)


@pytest.mark.parametrize("step", [1, 13, 300, 4096])
def test_splitter_drops_an_overlong_line_up_to_its_last_start_byte(step: int) -> None:
    f0 = enc("D", "a", 0, 0, [("x", "1")])
    f1 = enc("D", "a", 1, 1, [("x", "2")])
    lines, overflows = split_all(b"\n" + b"z" * 300 + f0 + b"\r\n" + f1 + b"\r\n", ord("$"), step)
    assert (lines, overflows) == ([f0, f1], 1)
    # without a start byte in reach, the whole line goes, once counted, until its newline
    lines, overflows = split_all(b"\n" + b"z" * 600 + b"\r\n" + f1 + b"\r\n", ord("$"), step)
    assert (lines, overflows) == ([f1], 1)
    lines, overflows = split_all(b"\n" + b"a,b" * 2000 + b"\n1,2\n", None, step, max_line=4096)
    assert (lines, overflows) == ([b"1,2"], 1)
