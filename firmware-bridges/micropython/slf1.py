# SLF/1 encoder for MicroPython (ESP32, RP2040) - see ../slf1/SLF1.md.
# Integer-only formatting: readings are fixed-point (mantissa, decimals), so frames are identical
# on boards with 32-bit floats and match the Arduino encoder byte for byte.

MAX_LINE = 255
_SPECIALS = b"$*,=%\r\n"
_HEX = b"0123456789ABCDEF"


def crc16(data, crc=0xFFFF):
    # CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def fixed(mantissa, decimals):
    # (-325, 2) -> "-3.25"; (50, 2) -> "0.50"; (55, 0) -> "55"
    sign = "-" if mantissa < 0 else ""
    m = -mantissa if mantissa < 0 else mantissa
    if decimals <= 0:
        return sign + str(m)
    scale = 10 ** decimals
    frac = str(m % scale)
    return sign + str(m // scale) + "." + "0" * (decimals - len(frac)) + frac


def escape(text):
    out = bytearray()
    for b in text.encode("utf-8") if isinstance(text, str) else text:
        if b in _SPECIALS:
            out += b"%"
            out.append(_HEX[b >> 4])
            out.append(_HEX[b & 15])
        else:
            out.append(b)
    return bytes(out)


def field_bytes(kind, field):
    # D fields: (key, mantissa or None, decimals); I/L/E fields: (key, text)
    if kind == "D":
        key, mantissa, decimals = field
        value = b"" if mantissa is None else fixed(mantissa, decimals).encode()
    else:
        key, text = field
        value = escape(text)
    return b"," + key.encode() + b"=" + value


def encode(kind, device_id, seq, uptime_ms, fields):
    body = b"1," + kind.encode() + b"," + device_id.encode() + b"," + str(seq & 0xFFFFFFFF).encode()
    body += b"," + str(uptime_ms & 0xFFFFFFFF).encode()
    for f in fields:
        body += field_bytes(kind, f)
    crc = crc16(body)
    digits = bytes((_HEX[crc >> 12], _HEX[(crc >> 8) & 15], _HEX[(crc >> 4) & 15], _HEX[crc & 15]))
    return b"$" + body + b"*" + digits + b"\r\n"


class Uptime:
    """uint32 milliseconds since boot. MicroPython's ticks_ms() wraps at 2**30 (about 12.4 days);
    summing ticks_diff() steps keeps SLF/1's 32-bit uptime (wrap after 49.7 days) honest, as long
    as it is read more often than every 6 days (every frame reads it)."""

    def __init__(self, ticks_ms, ticks_diff):
        self._ticks = ticks_ms
        self._diff = ticks_diff
        self._last = ticks_ms()
        self._ms = self._last

    def __call__(self):
        now = self._ticks()
        self._ms = (self._ms + self._diff(now, self._last)) & 0xFFFFFFFF
        self._last = now
        return self._ms


class Encoder:
    """Numbers frames for one device: seq +1 per frame from 0 at boot, uptime from ticks_ms."""

    def __init__(self, device_id, ticks_ms):
        self.device_id = device_id
        self.ticks_ms = ticks_ms
        self.seq = 0

    def _frame(self, kind, fields):
        frame = encode(kind, self.device_id, self.seq, self.ticks_ms(), fields)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        return frame

    def frames(self, kind, fields):
        # Split fields over as many frames as the 255-byte limit needs (a field never splits).
        head = len(encode(kind, self.device_id, 4294967295, 4294967295, ())) - 2
        out, batch, size = [], [], head
        for f in fields:
            n = len(field_bytes(kind, f))
            if batch and size + n > MAX_LINE:
                out.append(self._frame(kind, batch))
                batch, size = [], head
            if head + n > MAX_LINE:
                continue  # a single field that can never fit is dropped rather than sent broken
            batch.append(f)
            size += n
        if batch or not out:
            out.append(self._frame(kind, batch))
        return out

    def data(self, readings):
        return self.frames("D", readings)

    def info(self, fw, units):
        fields = [("fw", fw)]
        if units:
            fields.append(("units", ";".join(k + ":" + u for k, u in units)))
        return self.frames("I", fields)

    def log(self, msg, lvl=None):
        return self.frames("L", [("msg", msg)] + ([("lvl", lvl)] if lvl else []))

    def error(self, code, msg=None):
        return self.frames("E", [("code", code)] + ([("msg", msg)] if msg else []))
