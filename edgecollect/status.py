"""The status socket: the running agent answers `edgecollect status` over a unix socket.

A socket rather than a state file, so the SD card sees no writes for it. The socket lives at
`<state_dir>/status.sock`; each connection gets one JSON document and is closed.
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

log = logging.getLogger(__name__)
SOCKET_NAME = "status.sock"


class StatusServer:
    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]]) -> None:
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
                    conn.sendall(json.dumps(self._snapshot(), default=str).encode())
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


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def render(status: dict[str, Any]) -> str:
    """A plain-text table for people (no colours: it often ends up in a journal or a ticket)."""
    lines = [
        f"edgecollect {status['version']}  pid {status['pid']}  up {status['uptime_s']}s  "
        f"clock {'synced' if status.get('clock_synced') else 'NOT SYNCED'}  series {status.get('series', 0)}",
        f"config    {status.get('config')}",
        f"state     {status.get('state_dir')}",
        "",
        f"{'SOURCE':<16}{'KIND':<8}{'RING':>16}{'LOGS':>8}  ALIVE",
    ]
    for name, src in status["sources"].items():
        ring = f"{src['ring_points']}/{src['ring_capacity']}"
        lines.append(f"{name:<16}{src['kind']:<8}{ring:>16}{src['ring_logs']:>8}  {'yes' if src['alive'] else 'NO'}")
    sp = status["spool"]
    lines += [
        "",
        f"SPOOL     {sp['files']} files, {_human_bytes(sp['bytes'])} of {_human_bytes(sp['max_size'])}, "
        f"{sp['points']} points, oldest {sp['oldest_age_s']}s",
    ]
    up = status["upstream"]
    detail = ", ".join(f"{k}={v}" for k, v in up.items() if k != "state")
    lines.append(f"UPSTREAM  {up.get('state')}" + (f" ({detail})" if detail else ""))
    op = status.get("opamp")
    if op is not None:
        rc = op["remote_config"]
        remote = f"remote config {rc['status']}" + (f" ({rc['error']})" if rc["error"] else "")
        if not op["accept_remote_config"]:
            remote = "report only"
        seen = op["last_contact_s_ago"]
        lines.append(f"OPAMP     {op['state']} {op['endpoint']}"
                     + (f", last contact {seen}s ago" if seen is not None else "")
                     + f", {remote}" + (f", error: {op['last_error']}" if op["last_error"] else ""))
    lines += ["", "COUNTERS"]
    for name, values in sorted(status.get("counters", {}).items()):
        shown = {k: v for k, v in values.items() if v}
        if shown:
            text = ", ".join(f"{k or 'total'}={v}" for k, v in sorted(shown.items()))
            lines.append(f"  {name}: {text}")
    return "\n".join(lines)
