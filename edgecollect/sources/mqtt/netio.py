"""The session's socket I/O: paho's packet logic over reads and writes of whole chunks.

paho's own loop (`Client.loop`) costs about 50 us of CPU per QoS 1 message at 2,000 msg/s, most
of it system calls: one select() per packet, a recv() for the command byte, one per byte of the
remaining length and one for the rest, a send() per PUBACK, and a byte through its wake-up socket
pair per queued packet. Here:

* `ChunkedSocket` wraps the connected socket (plain or TLS): a recv() asks the kernel for up to
  `CHUNK` bytes and serves paho's small reads from what it got; a send() only queues, and
  `flush()` writes everything queued (all the PUBACKs of a durable batch) in one call.
* `step()` replaces `Client.loop()` with paho's documented external-loop calls: one select()
  unless bytes are already buffered, then `loop_read()` for every whole packet buffered (bounded
  per step), `loop_write()`, `loop_misc()` (keepalive), and a flush. paho's wake-up socket pair is
  never created: it exists for other threads calling publish(), which this source never does.

What a queued write means: paho counts a packet as sent once `send()` returned, so a PUBACK may
sit here until the end of the step. If the connection dies first it is lost with the connection,
as it would be in the kernel's send queue: the broker redelivers the message (a duplicate), never
a loss, because the ack only ever follows durability (design.md invariant 3).
"""

from __future__ import annotations

import select
import ssl
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

CHUNK = 65536  # bytes asked of the kernel per read: dozens of typical messages
PACKETS_PER_STEP = 1000  # whole packets handled per step before acks, writes and keepalive run
CLOSE_WAIT_S = 1.0  # how long our disconnect waits for room to write what is queued (DISCONNECT)


class ChunkedSocket:
    """A connected socket read in chunks and written in batches; the rest passes through."""

    def __init__(self, sock: Any) -> None:
        self.raw = sock
        self._in = b""
        self._pos = 0
        self._out = bytearray()

    # -- reading --------------------------------------------------------------------------------

    def recv(self, size: int) -> bytes:
        pos, held = self._pos, self._in
        if pos < len(held):
            end = min(pos + size, len(held))  # a short read, as from the kernel: paho asks again
            self._pos = end
            return held[pos:end]
        data: bytes = self.raw.recv(max(size, CHUNK))  # raises BlockingIOError / SSLWantRead as before
        if len(data) <= size:
            self._in, self._pos = b"", 0
            return data
        self._in, self._pos = data, size
        return data[:size]

    def pending(self) -> int:
        """Bytes read from the kernel (or TLS records decrypted) that paho has not taken yet."""
        buffered = len(self._in) - self._pos
        tls_pending = getattr(self.raw, "pending", None)
        return buffered + (tls_pending() if tls_pending is not None else 0)

    # -- writing --------------------------------------------------------------------------------

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self._out += data
        return len(data)

    def unsent(self) -> int:
        return len(self._out)

    def flush(self, wait_s: float = 0.0) -> bool:
        """Write what is queued, waiting up to `wait_s` for room; False if the connection failed."""
        out = self._out
        deadline = time.monotonic() + wait_s
        while out:
            try:
                n = self.raw.send(out)
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                left = deadline - time.monotonic()
                if left <= 0:
                    return True  # the kernel's buffer is full: the next step's select() waits for room
                try:
                    select.select([], [self.raw], [], left)
                except (OSError, ValueError):
                    out.clear()
                    return False
                continue
            except (OSError, ValueError):
                out.clear()
                return False
            del out[:n]
        return True

    # -- the rest of the socket -----------------------------------------------------------------

    def fileno(self) -> int:
        return int(self.raw.fileno())

    def setblocking(self, flag: bool) -> None:
        self.raw.setblocking(flag)

    def close(self) -> None:
        # Best effort, without waiting: a lost connection has nothing worth a delay before the
        # reconnect. Our own DISCONNECT was already flushed, with a wait, by `raw_socket()` in the
        # socket-close callback.
        self.flush()
        self.raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class ChunkedClient(mqtt.Client):
    """paho's client on a `ChunkedSocket`; its `loop()` is `step()`.

    Writes made outside a step (acks sent after the batcher reported durability) wait in the
    socket until `flush_writes(client)` or the end of the next step."""

    def _create_socket(self) -> Any:
        return ChunkedSocket(super()._create_socket())

    def loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        return step(self, timeout)


def raw_socket(sock: Any) -> Any:
    """The socket under a `ChunkedSocket` (what paho hands its callbacks), queued writes flushed."""
    if isinstance(sock, ChunkedSocket):
        sock.flush(CLOSE_WAIT_S)
        return sock.raw
    return sock


def step(client: mqtt.Client, timeout: float) -> MQTTErrorCode:
    """One turn of the network loop, like `client.loop(timeout)`; returns paho's error code."""
    sock = client.socket()
    if not isinstance(sock, ChunkedSocket):
        return MQTTErrorCode.MQTT_ERR_NO_CONN
    if timeout < 0:
        raise ValueError("Invalid timeout.")  # as paho's loop()
    readable = sock.pending() > 0
    if not readable:
        wlist = [sock] if client.want_write() or sock.unsent() else []
        try:
            rlist, _, _ = select.select([sock], wlist, [], timeout)
        except (OSError, ValueError, TypeError):
            return MQTTErrorCode.MQTT_ERR_CONN_LOST
        readable = bool(rlist)
    if readable:
        for _ in range(PACKETS_PER_STEP):
            rc = client.loop_read()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
            if client.socket() is None or not sock.pending():
                break
    return finish_step(client, sock)


def flush_writes(client: mqtt.Client) -> None:
    """Write what paho queued since the step (our acks) now; a failure shows at the next step."""
    sock = client.socket()
    if isinstance(sock, ChunkedSocket):
        sock.flush()


def finish_step(client: mqtt.Client, sock: ChunkedSocket) -> MQTTErrorCode:
    """Writes, keepalive and the flush that ends every step (also after our own acks)."""
    if client.socket() is None:
        return MQTTErrorCode.MQTT_ERR_CONN_LOST
    if client.want_write():
        rc = client.loop_write()
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return rc
    rc = client.loop_misc()
    if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
        return rc
    if not sock.flush():
        return MQTTErrorCode.MQTT_ERR_CONN_LOST
    return MQTTErrorCode.MQTT_ERR_SUCCESS
