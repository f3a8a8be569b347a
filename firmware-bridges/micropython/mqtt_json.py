# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: UP031
# Optional MQTT mode: publish each reading cycle as one JSON object to the gateway's broker
# (its [[sources.mqtt]] with format = "json"). A minimal MQTT 3.1.1 QoS 0 client, so it needs
# nothing beyond `socket` (present on ESP32/RP2040 W builds and the unix port).
#
#   topic   <prefix>/<device_id>/data    {"seq":7,"uptime_ms":70000,"temp.ds0":21.50,"hum.dht":40.2}
#           <prefix>/<device_id>/info    {"fw":"1.0.0","units":{"temp":"Cel","hum":"%"}} (retained)
#           <prefix>/<device_id>/error   {"code":"dht_timeout","msg":"..."}
# Numbers are written from fixed point, exactly as SLF/1 would; "no reading" keys are left out.
# The device id is in the topic only: a string in the data object would be a log record to a
# generic JSON reader, not an attribute.

try:
    import socket
except ImportError:  # older MicroPython ports
    import usocket as socket

import slf1
from bridge import Bridge


class MQTTError(Exception):
    pass


def _vlen(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes((len(b) >> 8, len(b) & 0xFF)) + b


class MQTTClient:
    def __init__(self, client_id, host, port=1883, keepalive=60, user=None, password=None):
        self.client_id = client_id
        self.host = host
        self.port = port
        self.keepalive = keepalive
        self.user = user
        self.password = password
        self.sock = None

    def connect(self):
        addr = socket.getaddrinfo(self.host, self.port)[0][-1]
        self.sock = socket.socket()
        self.sock.connect(addr)
        flags = 0x02  # clean session
        payload = _str(self.client_id)
        if self.user is not None:
            flags |= 0x80
            payload += _str(self.user)
            if self.password is not None:
                flags |= 0x40
                payload += _str(self.password)
        var = _str("MQTT") + bytes((4, flags, self.keepalive >> 8, self.keepalive & 0xFF))
        self._write(b"\x10" + _vlen(len(var) + len(payload)) + var + payload)
        ack = self._read(4)
        if ack[0] != 0x20 or ack[3] != 0:
            raise MQTTError("connack %d" % ack[3])

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise MQTTError("connection closed")
            buf += chunk
        return buf

    def _write(self, data):
        if hasattr(self.sock, "write"):
            self.sock.write(data)
        else:
            self.sock.sendall(data)

    def publish(self, topic, payload, retain=False):
        body = _str(topic) + (payload.encode() if isinstance(payload, str) else payload)
        self._write(bytes((0x30 | (1 if retain else 0),)) + _vlen(len(body)) + body)

    def disconnect(self):
        if self.sock is not None:
            try:
                self._write(b"\xe0\x00")
            finally:
                self.sock.close()
                self.sock = None


def _json_str(s):
    out = '"'
    for c in s:
        if c in '"\\':
            out += "\\" + c
        elif ord(c) < 0x20:
            out += "\\u%04x" % ord(c)
        else:
            out += c
    return out + '"'


def readings_json(seq, uptime_ms, readings):
    parts = ['"seq":%d' % seq, '"uptime_ms":%d' % uptime_ms]
    for key, mantissa, decimals in readings:
        if mantissa is not None:
            parts.append(_json_str(key) + ":" + slf1.fixed(mantissa, decimals))
    return "{" + ",".join(parts) + "}"


class MqttJsonBridge(Bridge):
    """The same loop as Bridge, publishing JSON instead of writing SLF/1 frames."""

    def __init__(self, client, device_id, adapters, ticks_ms, sleep_ms, interval_ms=10000, prefix="edgecollect"):
        super().__init__(device_id, adapters, None, ticks_ms, sleep_ms, interval_ms)
        self.client = client
        self.topic = prefix + "/" + device_id + "/"
        self.device_id = device_id
        self.ticks_ms = ticks_ms
        self.seq = 0

    def hello(self):
        units = ",".join(_json_str(k) + ":" + _json_str(u) for k, u in self.units())
        self.client.publish(self.topic + "info", '{"fw":%s,"units":{%s}}' % (_json_str(self.fw), units), True)

    def log(self, msg, lvl=None):
        self.client.publish(self.topic + "log", '{"msg":%s,"lvl":%s}' % (_json_str(msg), _json_str(lvl or "I")))

    def step(self):
        readings, errors = self.collect()
        for code, msg in errors:
            self.client.publish(self.topic + "error", '{"code":%s,"msg":%s}' % (_json_str(code), _json_str(msg or "")))
        self.client.publish(self.topic + "data", readings_json(self.seq, self.ticks_ms(), readings))
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        return readings
