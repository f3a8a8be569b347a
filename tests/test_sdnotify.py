"""sd_notify over a real AF_UNIX datagram socket, as systemd's manager listens for it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgecollect.sdnotify import MAX_STATUS_CHARS, Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def fields(datagram: bytes) -> dict[str, str]:
    text = datagram.decode()
    assert text.endswith("\n")
    return dict(line.split("=", 1) for line in text.splitlines())


def test_ready_with_status_is_one_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("sources running: 3")
    assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "sources running: 3"}


def test_each_message_kind(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.watchdog()
    assert fields(sock.recv(4096)) == {"WATCHDOG": "1"}
    assert n.status("backlog 12 files, upstream up")
    assert fields(sock.recv(4096)) == {"STATUS": "backlog 12 files, upstream up"}
    assert n.reloading()
    got = fields(sock.recv(4096))
    assert got["RELOADING"] == "1"
    assert int(got["MONOTONIC_USEC"]) > 0
    assert n.stopping("flushing rings")
    assert fields(sock.recv(4096)) == {"STOPPING": "1", "STATUS": "flushing rings"}


def test_status_cannot_inject_assignments(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    n.status("upstream error: bad\nREADY=1")
    got = fields(sock.recv(4096))
    assert got == {"STATUS": "upstream error: bad READY=1"}


def test_long_status_is_truncated(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    Notifier({"NOTIFY_SOCKET": path}).status("x" * 10_000)
    assert len(fields(sock.recv(65536))["STATUS"]) == MAX_STATUS_CHARS


def test_abstract_namespace_socket() -> None:
    name = f"edgecollect-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert fields(sock.recv(4096)) == {"READY": "1"}
    finally:
        sock.close()


def test_without_systemd_every_call_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.ready("x")
    assert not n.watchdog()
    assert n.watchdog_interval_s() is None


def test_vanished_socket_is_not_an_error(tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.enabled
    assert not n.ready()
    assert not n.watchdog()  # second failure: still no exception


def test_watchdog_interval_is_half_the_timeout() -> None:
    pid = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}).watchdog_interval_s() == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval_s() == 15.0
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval_s() is None
    assert Notifier({"WATCHDOG_USEC": "junk"}).watchdog_interval_s() is None


def test_watchdog_meant_for_another_process_is_ignored() -> None:
    other = str(os.getpid() + 1)
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": other}).watchdog_interval_s() is None


@pytest.mark.integration
def test_notifies_from_a_child_process_environment(listener: tuple[socket.socket, str]) -> None:
    """The way systemd hands it over: variables in the environment of a fresh process."""
    sock, path = listener
    code = (
        "from edgecollect.sdnotify import Notifier\n"
        "n = Notifier()\n"
        "assert n.watchdog_interval_s() == 2.5, n.watchdog_interval_s()\n"
        "n.ready('up')\n"
    )
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="5000000")
    env.pop("WATCHDOG_PID", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    assert fields(sock.recv(4096)) == {"READY": "1", "STATUS": "up"}
