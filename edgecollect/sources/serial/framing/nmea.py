"""NMEA 0183 position sentences: GGA, RMC, GSA from any talker (GP, GN, GL, GA, BD, ...).

Owns the sentence checks (`$`, `*hh` XOR checksum over the bytes between `$` and `*`) and the
mapping to gauges (prefix + name, UCUM unit):

    gps.latitude / gps.longitude  deg   GGA with fix quality > 0, RMC with status A
    gps.altitude                  m     GGA (above mean sea level), only with a fix
    gps.fix_quality               1     GGA field 6, reported even when 0 (no fix)
    gps.satellites                1     GGA satellites in use
    gps.hdop                      1     GGA, GSA
    gps.pdop / gps.vdop           1     GSA
    gps.fix_type                  1     GSA: 1 no fix, 2 2D, 3 3D
    gps.speed                     m/s   RMC speed over ground (knots * 1852/3600)
    gps.course                    deg   RMC course over ground, true

A no-fix sentence never yields a position (no 0,0 on the map). Other sentence types (GSV, VTG, ...)
are valid input and counted `ok` with no points. Empty fields mean "no reading" and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from edgecollect.model import Parsed, Point
from edgecollect.sources.serial.framing._common import SeriesMaker, reject

KNOT_M_S = 1852.0 / 3600.0
_HEX2 = re.compile(rb"[0-9A-Fa-f]{2}")
_ADDRESS = re.compile(r"[A-Z][A-Z0-9]{4,5}")  # talker (2, or 1 for P-proprietary) + type
_NUM = re.compile(r"[-+]?[0-9]+(?:\.[0-9]+)?")
_LAT = re.compile(r"([0-9]{2})([0-9]{2}(?:\.[0-9]+)?)")
_LON = re.compile(r"([0-9]{3})([0-9]{2}(?:\.[0-9]+)?)")


class _BadValue(Exception):
    """Internal: a field that is present but not a number/coordinate; becomes outcome "value"."""


def checksum(body: bytes) -> int:
    acc = 0
    for b in body:
        acc ^= b
    return acc


def _num(text: str) -> float | None:
    if not text:
        return None
    if not _NUM.fullmatch(text):
        raise _BadValue(text)
    return float(text)


def _coord(text: str, hemi: str, pattern: re.Pattern[str], limit: float, negative: str) -> float | None:
    if not text and not hemi:
        return None
    m = pattern.fullmatch(text)
    if not m or hemi not in ("NS" if negative == "S" else "EW"):
        raise _BadValue(text)
    degrees = int(m.group(1)) + float(m.group(2)) / 60.0
    if degrees > limit or float(m.group(2)) >= 60.0:
        raise _BadValue(text)
    return -degrees if hemi == negative else degrees


class NmeaParser:
    def __init__(self, prefix: str, units: dict[str, str]) -> None:
        self._series = SeriesMaker(prefix, units)
        self._handlers: dict[str, Callable[[list[str]], list[Point] | None]] = {
            "GGA": self._gga, "RMC": self._rmc, "GSA": self._gsa,
        }

    def parse(self, line: bytes, time_ns: int) -> Parsed:
        start = line.rfind(b"$")
        if start < 0:
            return reject("no_start")
        end = len(line)
        if end - start < 4 or line[end - 3] != 0x2A or not _HEX2.fullmatch(line, end - 2):
            return reject("no_crc")
        body = line[start + 1 : end - 3]
        if checksum(body) != int(line[end - 2 :], 16):
            return reject("crc")
        try:
            fields = body.decode("ascii").split(",")
        except UnicodeDecodeError:
            return reject("header")
        if not _ADDRESS.fullmatch(fields[0]):
            return reject("header")
        handler = self._handlers.get(fields[0][-3:])
        if handler is None or fields[0][0] == "P":
            return Parsed()
        try:
            points = handler(fields)
        except _BadValue:
            return reject("value")
        if points is None:
            return reject("field")
        return Parsed(tuple(points))

    def _point(self, name: str, value: float | None, unit: str, out: list[Point]) -> None:
        if value is not None:
            out.append(Point(self._series.series(name, (), {name: unit}), value))

    def _gga(self, f: list[str]) -> list[Point] | None:
        # $GPGGA,time,lat,N,lon,E,quality,sats,hdop,alt,M,geoid,M,age,station
        if len(f) < 15:
            return None
        quality = _num(f[6])
        out: list[Point] = []
        if quality is None:
            return out
        self._point("gps.fix_quality", int(quality), "1", out)
        sats = _num(f[7])
        self._point("gps.satellites", None if sats is None else int(sats), "1", out)
        self._point("gps.hdop", _num(f[8]), "1", out)
        if quality > 0:
            lat = _coord(f[2], f[3], _LAT, 90.0, "S")
            lon = _coord(f[4], f[5], _LON, 180.0, "W")
            if lat is not None and lon is not None:
                self._point("gps.latitude", lat, "deg", out)
                self._point("gps.longitude", lon, "deg", out)
            self._point("gps.altitude", _num(f[9]), "m", out)
        return out

    def _rmc(self, f: list[str]) -> list[Point] | None:
        # $GPRMC,time,status,lat,N,lon,E,speed_kn,course,date,magvar,E[,mode[,navstatus]]
        if len(f) < 12:
            return None
        out: list[Point] = []
        if f[2] == "A":
            lat = _coord(f[3], f[4], _LAT, 90.0, "S")
            lon = _coord(f[5], f[6], _LON, 180.0, "W")
            if lat is not None and lon is not None:
                self._point("gps.latitude", lat, "deg", out)
                self._point("gps.longitude", lon, "deg", out)
            knots = _num(f[7])
            self._point("gps.speed", None if knots is None else knots * KNOT_M_S, "m/s", out)
            self._point("gps.course", _num(f[8]), "deg", out)
        elif f[2] != "V":
            raise _BadValue(f[2])
        return out

    def _gsa(self, f: list[str]) -> list[Point] | None:
        # $GPGSA,mode,fix_type,sv1..sv12,pdop,hdop,vdop[,system_id]
        if len(f) < 18:
            return None
        out: list[Point] = []
        fix_type = _num(f[2])
        self._point("gps.fix_type", None if fix_type is None else int(fix_type), "1", out)
        if fix_type is not None and fix_type > 1:
            self._point("gps.pdop", _num(f[15]), "1", out)
            self._point("gps.hdop", _num(f[16]), "1", out)
            self._point("gps.vdop", _num(f[17]), "1", out)
        return out
