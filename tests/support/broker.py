"""A real mosquitto on a free loopback port, restartable on the same port.

By default the broker keeps persistent sessions across restarts (`persistence true`, saved on
SIGTERM), queues without a practical limit (so a long outage in a test never drops QoS 1 messages at
the broker), and logs into its directory; `options` overrides any of those settings. A missing
mosquitto fails the tests that need it, never skips them.

The `broker` fixture is one broker per session of the folder whose conftest.py imports it;
`running_broker` is that broker, started again if an earlier test left it stopped.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.support.ports import free_port

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/usr/bin/mosquitto")

DEFAULT_OPTIONS: Mapping[str, str] = {
    "persistence": "true",
    "autosave_interval": "5",
    # Large enough that nothing is ever queued-and-dropped in a test; per client.
    "max_queued_messages": "1000000",
    "max_inflight_messages": "100",
    "max_keepalive": "65535",
}


def find_mosquitto() -> str:
    found = shutil.which("mosquitto")
    if found:
        return found
    for path in MOSQUITTO_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    pytest.fail("mosquitto is not installed (apt-get install -y mosquitto); MQTT tests need a real broker")


class Broker:
    def __init__(self, directory: Path, listener: tuple[str, ...] = ("allow_anonymous true",),
                 options: Mapping[str, str] | None = None) -> None:
        self.binary = find_mosquitto()
        self.directory = directory
        self.port = free_port()
        self.host = "127.0.0.1"
        self.conf = directory / "mosquitto.conf"
        self.log = directory / "mosquitto.log"
        (directory / "data").mkdir(exist_ok=True)
        settings = {**DEFAULT_OPTIONS, **(options or {})}
        self.conf.write_text(
            "\n".join([
                # As root, mosquitto would drop to the "mosquitto" user, which cannot reach pytest's
                # 0700 temp dirs: persistence would silently fail. Stay the user that started it.
                *(["user root"] if os.geteuid() == 0 else []),
                f"listener {self.port} 127.0.0.1",
                *listener,
                f"persistence_location {directory / 'data'}/",
                *(f"{key} {value}" for key, value in settings.items()),
                f"log_dest file {self.log}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                "",
            ]),
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                pytest.fail(f"mosquitto exited with {self.proc.returncode}: {err} (log: {self.log})")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    self.starts += 1
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"mosquitto did not listen on {self.port} within 15 s (log: {self.log})")

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file (sessions, queued QoS>=1) and exits."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    b = Broker(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def running_broker(broker: Broker) -> Broker:
    """The session broker, started again if an earlier test left it stopped."""
    if broker.proc is None or broker.proc.poll() is not None:
        broker.start()
    return broker
