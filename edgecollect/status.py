"""The status socket: the running agent answers `edgecollect status` over a unix socket.

A socket rather than a state file, so the SD card sees no writes for it. The socket lives at
`<state_dir>/status.sock`; each connection gets one JSON document (`AgentStatus.to_json()`, its
keys listed in statusmodel.py) and is closed. statustext.py renders it for people.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgecollect.statusmodel import AgentStatus

log = logging.getLogger(__name__)
SOCKET_NAME = "status.sock"


class StatusServer:
    def __init__(self, path: Path, snapshot: Callable[[], AgentStatus]) -> None:
        self.path = path
        self._snapshot = snapshot
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            os.chmod(self.path, 0o660)
            sock.listen(4)
        except OSError as exc:
            sock.close()
            log.warning("status socket %s unavailable: %s", self.path, exc)
            return
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="status", daemon=True)
        self._thread.start()

    def _serve(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                try:
                    conn.sendall(json.dumps(self._snapshot().to_json(), default=str).encode())
                except Exception:
                    log.debug("status: snapshot failed", exc_info=True)

    def stop(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        if self._thread is not None:
            # Joined, so the thread (and the snapshot callback it holds: the whole old pipeline on
            # a reload) is gone when stop() returns; accept() has already failed on the closed socket.
            self._thread.join(5.0)
            self._thread = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def query(path: Path, timeout_s: float = 3.0) -> dict[str, Any]:
    """Ask a running agent; raises OSError when none answers at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data: dict[str, Any] = json.loads(b"".join(chunks))
    return data
