"""Closing the broker connection with a FIN, never a reset, so the broker reads our last PUBACKs.

paho closes the socket right after it has written DISCONNECT. If the kernel then still holds bytes
the broker sent us that we have not read (a SUBACK, a PINGRESP, the next PUBLISH that our acks let
through the Receive Maximum window), Linux answers `close()` with a TCP reset instead of a FIN: what
is left of our last writes in the send queue (small PUBACKs held back behind an unacknowledged
segment) is thrown away, and the broker reads a reset instead of them. Those messages were durable
and acked by us, yet the broker redelivers them at the next start (duplicates), and it sees the
session end uncleanly.

So on a deliberate disconnect we half-close (the FIN goes after everything already written), read
and discard until the broker closes its side (it does on DISCONNECT, or on our FIN), bounded in
time, and only then let paho close the socket: with nothing unread, `close()` sends no reset.
"""

from __future__ import annotations

import select
import socket
import time
from typing import Any

LINGER_S = 1.0  # a broker closes within milliseconds of DISCONNECT; this bounds a frozen one
_CHUNK = 65536


def finish(sock: Any, timeout_s: float = LINGER_S) -> bool:
    """Half-close `sock` and drain it until the peer's EOF or `timeout_s`; True if EOF was seen.

    `sock` is what paho hands its socket-close callback (a socket, or an SSL socket: after
    `shutdown` it reads the raw stream, which is all we need to discard it).
    """
    if not isinstance(sock, socket.socket):
        return False
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:  # already reset or not connected: nothing to save
        return False
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                return False
            if not sock.recv(_CHUNK):
                return True
        except (BlockingIOError, InterruptedError):
            continue
        except (OSError, ValueError):
            return False
    return False
