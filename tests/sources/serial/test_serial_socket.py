"""`socket://` ports: what a TCP serial bridge sends from the first moment of a connection is read.

The peer is a real TCP server that speaks first (as a ser2net-like bridge or a device on a
terminal server does): a burst of lines the instant it accepts, then one more line later. Only the
first line of each connection may be dropped (slf1.md: the first line after open may be partial).
Before: pyserial's open() drained the burst as if it were a stale tty buffer, and the splitter then
dropped the next line as the "first partial" one, so a whole connection's data could vanish.
"""

from __future__ import annotations

import socket
import threading

from edgecollect.sources.serial.config import SerialConfig
from tests.sources.serial.serial_helpers import Collected, counters, make_ctx, running

ROUNDS = 8
BURST = 20


class SpeaksFirst:
    """Accepts one connection per round, sends `BURST` lines at once, waits for a go, sends one more."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.more = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.server.settimeout(30)
        for r in range(ROUNDS):
            conn, _ = self.server.accept()
            with conn:
                conn.sendall(b"".join(f"r{r}={i}\n".encode() for i in range(BURST)))
                self.more.wait(30)
                self.more.clear()
                conn.sendall(f"r{r}={BURST}\n".encode())
                self.done.wait(30)
                self.done.clear()
        self.server.close()


def test_a_peer_that_speaks_first_loses_only_the_first_line() -> None:
    peer = SpeaksFirst()
    ctx = make_ctx()
    got = Collected(ctx)
    cfg = SerialConfig(port=f"socket://127.0.0.1:{peer.port}", framing="kv", reopen_backoff_max=0.2)
    with running(cfg, ctx):
        for r in range(ROUNDS):
            got.wait_for(lambda c, r=r: any(s.metric == f"r{r}" for s in c.samples), 30, f"round {r}'s burst")
            peer.more.set()
            got.wait_for(lambda c, r=r: any(s.metric == f"r{r}" and s.value == BURST for s in c.samples),
                         30, f"round {r}'s last line")
            peer.done.set()  # the peer closes; the source sees the connection end and reconnects
    for r in range(ROUNDS):
        values = [s.value for s in got.samples if s.metric == f"r{r}"]
        assert values == list(range(1, BURST + 1)), f"round {r}: {values}"
    assert counters(ctx)["port_opens"][""] >= ROUNDS
