"""SLF/1, the Sensor Line Frame (firmware-bridges/slf1/SLF1.md is the normative text).

Owns: the frame codec (`decode`, `encode`, `crc16`), the per-port session that turns seq/uptime
into lost-frame, duplicate, reboot and board-swap events, and the mapping of data keys to series:

    D frame key `temp.ds0` -> metric `<prefix>temp`, attributes device.id=<device_id>, sensor.id=ds0
    D frame key `hum`      -> metric `<prefix>hum`,  attribute  device.id=<device_id>
    unit: the device's I frame (`units=temp:Cel;hum:%25`) for this boot, else config `units` by
          metric name (with or without prefix), else "1"
    L/E frames -> log records (INFO/ERROR; `lvl=W` etc. overrides), I frames -> an INFO log record

Wire format (slf1.md):  $<ver>,<kind>,<device_id>,<seq>,<uptime_ms>[,<key>=<value>]...*<CRC16>\r\n
A frame failing any check is rejected whole, with one outcome; it is never repaired.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgecollect.model import AttrValue, LogRecord, Parsed, Point, Value, attrs
from edgecollect.sources.serial.framing._common import SeriesMaker, parse_number_text, reject

VERSION = b"1"
KINDS = frozenset("DILE")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_DEVICE = re.compile(r"[A-Za-z0-9_.:-]{1,32}")
_KEY = re.compile(r"([a-z][a-z0-9_]{0,31})(?:\.([A-Za-z0-9_-]{1,16}))?")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}")
_RAW_FORBIDDEN = re.compile(r"[$*,=%\r\n]")
_TEXT_SPECIALS = "$*,=%\r\n"
UINT32 = 1 << 32
MAX_DECLARED_UNITS = 64
GAP_LOG_INTERVAL_NS = 60 * 1_000_000_000  # at most one "lost frames" log record a minute per port
_LEVELS = {"D": ("DEBUG", 5), "I": ("INFO", 9), "W": ("WARN", 13), "E": ("ERROR", 17), "F": ("FATAL", 21)}


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF); binascii implements exactly this one."""
    return binascii.crc_hqx(data, 0xFFFF)


def escape_text(text: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in _TEXT_SPECIALS else c for c in text)


def unescape_text(raw: str) -> str | None:
    """Decoded text, or None when a raw special or a broken `%XX` is present."""
    pieces = raw.split("%")
    if _RAW_FORBIDDEN.search(pieces[0]):
        return None
    if len(pieces) == 1:
        return raw
    out = bytearray(pieces[0].encode("ascii"))
    for piece in pieces[1:]:
        if not _HEX2.fullmatch(piece[:2]) or _RAW_FORBIDDEN.search(piece, 2):
            return None
        out.append(int(piece[:2], 16))
        out += piece[2:].encode("ascii")
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode(kind: str, device_id: str, seq: int, uptime_ms: int, fields: Sequence[tuple[str, str]]) -> bytes:
    """The reference encoder: `fields` values are already formatted numbers (D) or plain text."""
    parts = [VERSION.decode(), kind, device_id, str(seq % UINT32), str(uptime_ms % UINT32)]
    for key, value in fields:
        parts.append(f"{key}={value if kind == 'D' else escape_text(value)}")
    body = ",".join(parts).encode("ascii")
    return b"$" + body + b"*%04X\r\n" % crc16(body)


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str
    device_id: str
    seq: int
    uptime_ms: int
    values: tuple[tuple[str, Value | None], ...] = ()  # D frames; None = "no reading"
    texts: tuple[tuple[str, str], ...] = ()  # I/L/E frames, unescaped


def decode(line: bytes) -> Frame | str:
    """A `Frame`, or the reject outcome for `line` (bytes after the last `$` are the candidate)."""
    start = line.rfind(b"$")
    if start < 0:
        return "no_start"
    end = len(line)
    if end - start < 6 or line[end - 5] != 0x2A or not _HEX4.fullmatch(line, end - 4):
        return "no_crc"
    body = line[start + 1 : end - 5]
    if crc16(body) != int(line[end - 4 :], 16):
        return "crc"
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return "field"
    parts = text.split(",")
    if parts[0] != "1":
        return "version"
    if len(parts) < 5:
        return "header"
    _, kind, device_id, seq, uptime = parts[:5]
    if (
        kind not in KINDS
        or not _valid_device(device_id)
        or not (seq.isdigit() and len(seq) <= 10 and uptime.isdigit() and len(uptime) <= 10)
        or int(seq) >= UINT32
        or int(uptime) >= UINT32
    ):
        return "header"
    seen: set[str] = set()
    values: list[tuple[str, Value | None]] = []
    texts: list[tuple[str, str]] = []
    for part in parts[5:]:
        key, sep, raw = part.partition("=")
        if not sep or key in seen or not _valid_key(key):
            return "field"
        seen.add(key)
        if kind == "D":
            if not raw:
                values.append((key, None))
                continue
            number = parse_number_text(raw)
            if number is None:
                return "value"
            values.append((key, number))
        else:
            decoded = unescape_text(raw)
            if decoded is None:
                return "value"
            texts.append((key, decoded))
    return Frame(kind, device_id, int(seq), int(uptime), tuple(values), tuple(texts))


# A steady stream repeats the same device id and keys: memoise their (pure) syntax checks.
@functools.lru_cache(maxsize=4096)
def _valid_device(text: str) -> bool:
    return _DEVICE.fullmatch(text) is not None


@functools.lru_cache(maxsize=4096)
def _valid_key(text: str) -> bool:
    return _KEY.fullmatch(text) is not None


def parse_units(text: str) -> dict[str, str]:
    """`temp:Cel;hum:%` -> {"temp": "Cel", "hum": "%"}; malformed entries are skipped."""
    out: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, unit = item.partition(":")
        if sep and key and unit:
            out[key.strip()] = unit.strip()
    return out


class Session:
    """What the gateway remembers about the board on one port (slf1.md step 5)."""

    def __init__(self) -> None:
        self.device_id: str | None = None
        self.seq = -1
        self.uptime_ms = -1
        self.units: dict[str, str] = {}
        self.pending_lost = 0
        self.last_gap_log_ns = -GAP_LOG_INTERVAL_NS


class Slf1Parser:
    """Decodes frames and tracks the session; events go to `on_event(name, n)` for counting.

    Events: lost_frames, duplicates, reboots, board_swaps.
    """

    def __init__(
        self,
        prefix: str,
        units: dict[str, str],
        port_label: str,
        on_event: Callable[[str, int], None] | None = None,
    ) -> None:
        self._series = SeriesMaker(prefix, units)
        self._port = port_label
        self._on_event = on_event or (lambda _name, _n: None)
        self.session = Session()
        self._extra: dict[tuple[str, str], tuple[tuple[str, AttrValue], ...]] = {}

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        frame = decode(line)
        if isinstance(frame, str):
            return reject(frame)
        logs: list[LogRecord] = []
        if not self._track(frame, time_ns, logs):
            return Parsed(logs=tuple(logs))
        if frame.kind == "D":
            return Parsed(self._points(frame), tuple(logs))
        logs.append(self._text_log(frame, time_ns))
        return Parsed(logs=tuple(logs))

    def _points(self, frame: Frame) -> tuple[Point, ...]:
        declared = self.session.units
        out = []
        for key, value in frame.values:
            if value is None:
                continue
            metric, _, instance = key.partition(".")
            extra = self._extra.get((frame.device_id, instance))
            if extra is None:
                extra = (("device.id", frame.device_id),) + ((("sensor.id", instance),) if instance else ())
                if len(self._extra) > 1024:
                    self._extra.clear()
                self._extra[(frame.device_id, instance)] = extra
            out.append(Point(self._series.series(metric, extra, declared), value))
        return tuple(out)

    def _track(self, frame: Frame, time_ns: int, logs: list[LogRecord]) -> bool:
        """Update the session; False when the frame is a duplicate to drop."""
        s = self.session
        if s.device_id is not None and frame.device_id != s.device_id:
            self._on_event("board_swaps", 1)
            body = f"board swapped: device {s.device_id} replaced by {frame.device_id}"
            previous = ("slf.previous_device.id", s.device_id)
            logs.append(self._log(time_ns, "WARN", body, frame.device_id, previous))
            s.units = {}
            s.seq = -1
        elif s.seq >= 0:
            expected = (s.seq + 1) % UINT32
            if frame.seq == expected:
                pass
            elif frame.seq <= s.seq and frame.uptime_ms < s.uptime_ms:
                self._on_event("reboots", 1)
                if frame.seq:
                    self._on_event("lost_frames", frame.seq)
                logs.append(self._log(time_ns, "WARN", f"device {frame.device_id} rebooted (seq {s.seq} -> "
                                      f"{frame.seq}, uptime {s.uptime_ms} ms -> {frame.uptime_ms} ms)",
                                      frame.device_id))
                s.units = {}
            elif frame.seq <= s.seq:
                # same or older seq without a reboot: a repeated or replayed frame
                self._on_event("duplicates", 1)
                return False
            else:
                lost = (frame.seq - expected) % UINT32
                self._on_event("lost_frames", lost)
                s.pending_lost += lost
                if time_ns - s.last_gap_log_ns >= GAP_LOG_INTERVAL_NS:
                    logs.append(self._log(time_ns, "WARN", f"lost {s.pending_lost} frame(s) from "
                                          f"{frame.device_id} (last gap: seq {s.seq} -> {frame.seq})",
                                          frame.device_id))
                    s.pending_lost = 0
                    s.last_gap_log_ns = time_ns
        s.device_id, s.seq, s.uptime_ms = frame.device_id, frame.seq, frame.uptime_ms
        if frame.kind == "I":
            for key, text in frame.texts:
                if key == "units":
                    s.units.update(parse_units(text))
                    while len(s.units) > MAX_DECLARED_UNITS:
                        s.units.pop(next(iter(s.units)))
        return True

    def _text_log(self, frame: Frame, time_ns: int) -> LogRecord:
        texts = dict(frame.texts)
        if frame.kind == "I":
            body = "device hello: " + " ".join(f"{k}={v}" for k, v in frame.texts)
            return self._log(time_ns, "INFO", body, frame.device_id)
        level = "ERROR" if frame.kind == "E" else "INFO"
        lvl = texts.pop("lvl", "")
        if lvl[:1].upper() in _LEVELS:
            level = _LEVELS[lvl[:1].upper()][0]
        msg = texts.pop("msg", None)
        body = msg if msg is not None else " ".join(f"{k}={v}" for k, v in texts.items())
        extra = [(f"slf.{k}", v) for k, v in texts.items()] if msg is not None else []
        return self._log(time_ns, level, body, frame.device_id, *extra)

    def _log(self, time_ns: int, level: str, body: str, device_id: str, *extra: tuple[str, str]) -> LogRecord:
        number = _LEVELS.get(level[0], ("INFO", 9))[1]
        return LogRecord(time_ns, body, level, number,
                         attrs(dict(extra), **{"device.id": device_id, "serial.port": self._port}))
