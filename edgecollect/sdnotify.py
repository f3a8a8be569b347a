"""Talking to systemd's service manager over $NOTIFY_SOCKET (sd_notify(3)), without a dependency.

Owns the notify protocol only: one datagram per message, newline-separated `KEY=VALUE` lines, sent
to the AF_UNIX datagram socket named by $NOTIFY_SOCKET (a path, or an abstract-namespace name when
it starts with '@'). The runtime decides *when* to say READY=1, WATCHDOG=1, STATUS=..., RELOADING=1
and STOPPING=1; this module never starts threads of its own.

Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op returning False, so the agent runs
the same from a shell. A send failure (manager gone, socket full) is logged once and never raised:
the service manager's absence must not stop data collection.

Watchdog: with `WatchdogSec=` systemd sets $WATCHDOG_USEC (and $WATCHDOG_PID). The runtime should
send WATCHDOG=1 every `watchdog_interval_s()` — half the timeout, as sd_watchdog_enabled(3)
recommends — from the loop whose liveness it vouches for (the main loop), never from a thread that
does nothing else, or a hung pipeline would still look alive.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)

# systemd truncates STATUS= at this length in `systemctl status`; longer texts only waste a datagram.
MAX_STATUS_CHARS = 512


def _address(raw: str) -> str | None:
    """The socket address for $NOTIFY_SOCKET, or None for forms we do not speak (vsock: ...)."""
    if raw.startswith("@"):
        return "\0" + raw[1:]  # abstract namespace: leading NUL instead of '@'
    if raw.startswith("/"):
        return raw
    return None


class Notifier:
    """A handle on the service manager's notify socket; cheap to build, safe to share across threads."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        environ = os.environ if env is None else env
        raw = environ.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        if raw and self._address is None:
            log.warning("NOTIFY_SOCKET=%r is not a unix socket address; not notifying systemd", raw)
        self._watchdog_usec = self._parse_watchdog(environ)
        self._warned = False

    @staticmethod
    def _parse_watchdog(environ: Mapping[str, str]) -> int | None:
        usec = environ.get("WATCHDOG_USEC", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        # WATCHDOG_PID names the process the watchdog is meant for; a child that inherited the
        # variables (e.g. a helper we spawn) must not feed the watchdog on our behalf.
        pid = environ.get("WATCHDOG_PID", "")
        if pid and (not pid.isdigit() or int(pid) != os.getpid()):
            return None
        return int(usec)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens for notifications."""
        return self._address is not None

    def watchdog_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half of WatchdogSec=), or None when no watchdog is armed."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2_000_000

    def send(self, **fields: str | int) -> bool:
        """Send one notification made of `KEY=VALUE` lines; True if the datagram went out."""
        if self._address is None:
            return False
        lines = []
        for key, value in fields.items():
            text = str(value)
            if "\n" in text:
                # A newline would start a new assignment inside the datagram: never let a status
                # text (which may quote an upstream error) inject e.g. READY=1 or MAINPID=.
                text = text.replace("\n", " ")
            lines.append(f"{key}={text}")
        payload = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, self._address)
        except OSError as exc:
            if not self._warned:
                log.warning("could not notify systemd at %r: %s", self._address.replace("\0", "@"), exc)
                self._warned = True
            return False
        return True

    # -- the messages edgecollect sends ---------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """READY=1 once the sources run: systemd then considers the start job done."""
        if status is None:
            return self.send(READY=1)
        return self.send(READY=1, STATUS=status[:MAX_STATUS_CHARS])

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def status(self, text: str) -> bool:
        """STATUS=... shown by `systemctl status` (backlog, upstream state)."""
        return self.send(STATUS=text[:MAX_STATUS_CHARS])

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 at the start of a SIGHUP reload; send ready() when the reload is done.

        MONOTONIC_USEC is required by Type=notify-reload (systemd >= 253) and ignored by older
        managers, so it is always sent.
        """
        fields: dict[str, str | int] = {
            "RELOADING": 1,
            "MONOTONIC_USEC": time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
        }
        if status is not None:
            fields["STATUS"] = status[:MAX_STATUS_CHARS]
        return self.send(**fields)

    def stopping(self, status: str | None = None) -> bool:
        """STOPPING=1 when shutdown begins (rings are being flushed to the spool)."""
        if status is None:
            return self.send(STOPPING=1)
        return self.send(STOPPING=1, STATUS=status[:MAX_STATUS_CHARS])
