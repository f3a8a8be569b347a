"""The session socket wrapper on real socket pairs: chunked reads, batched writes, flush on close.
(The broker tests run the whole session over it: test_broker, test_disconnect, test_crash, test_tls.)"""

from __future__ import annotations

import select
import socket

from edgecollect.sources.mqtt.netio import ChunkedSocket, raw_socket


def pair() -> tuple[ChunkedSocket, socket.socket]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    return ChunkedSocket(ours), peer


def readable(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0])


def test_small_reads_are_served_from_one_chunk() -> None:
    sock, peer = pair()
    packets = [bytes([0x30, 5]) + b"hello", bytes([0x30, 3]) + b"abc"]
    peer.sendall(b"".join(packets))
    select.select([sock], [], [], 5)
    assert sock.recv(1) == b"\x30"  # paho's command byte: the kernel gave us everything at once
    assert sock.pending() == sum(map(len, packets)) - 1
    assert not readable(sock.raw)
    assert sock.recv(1) == b"\x05" and sock.recv(5) == b"hello"
    assert sock.recv(1) == b"\x30" and sock.recv(1) == b"\x03" and sock.recv(100) == b"abc"
    assert sock.pending() == 0
    try:
        sock.recv(1)
    except BlockingIOError:
        pass
    else:
        raise AssertionError("an empty non-blocking socket must raise BlockingIOError, as paho expects")
    peer.close()
    assert sock.recv(1) == b""  # the peer's EOF reaches paho as before


def test_writes_wait_for_flush_and_leave_in_order() -> None:
    sock, peer = pair()
    for mid in range(1, 51):
        assert sock.send(bytes([0x40, 2, 0, mid])) == 4  # paho sees each PUBACK as written
    assert not readable(peer) and sock.unsent() == 200
    assert sock.flush()
    assert sock.unsent() == 0
    got = b""
    while len(got) < 200:
        got += peer.recv(4096)
    assert got == b"".join(bytes([0x40, 2, 0, mid]) for mid in range(1, 51))


def test_a_flush_that_finds_the_kernel_buffer_full_keeps_the_rest() -> None:
    sock, peer = pair()
    big = b"x" * (8 << 20)  # more than a socket pair buffers
    sock.send(big)
    assert sock.flush()
    left = sock.unsent()
    assert 0 < left < len(big)
    got = 0
    while sock.unsent() or got < len(big):
        if select.select([peer], [], [], 5)[0]:
            got += len(peer.recv(1 << 20))
        sock.flush()
    assert got == len(big)


def test_close_and_the_close_callback_flush_what_is_queued() -> None:
    sock, peer = pair()
    sock.send(b"\xe0\x00")  # DISCONNECT, "sent" as paho closes the socket right after it
    assert raw_socket(sock) is sock.raw
    assert peer.recv(10) == b"\xe0\x00"
    sock.send(b"\x40\x02\x00\x07")
    sock.close()
    assert peer.recv(10) == b"\x40\x02\x00\x07"
    assert peer.recv(10) == b""  # then closed


def test_a_flush_to_a_dead_peer_reports_failure() -> None:
    sock, peer = pair()
    peer.close()  # a unix socket pair: the next write fails at once (EPIPE)
    sock.send(b"\x40\x02\x00\x01")
    assert not sock.flush()
    assert sock.unsent() == 0  # dropped with the connection: the broker redelivers, never a loss
