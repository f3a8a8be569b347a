"""The agent as a real process: `python -m edgecollect run -c CONFIG`, its output in a log file,
started, stopped with SIGTERM or kill -9, and asked for its status over its socket.

    agent = AgentProcess(config, state_dir, tmp_path / "agent.log").start()
    agent.wait_up()
    agent.counter("edgecollect.spool.batches")
    agent.wait_status(lambda st: st["spool"]["files"] == 0, "an empty spool")
    agent.kill9()

`env` adds to the test's own environment; a value of None removes that variable (e.g.
STATE_DIRECTORY, so an agent whose config names no state_dir finds it through XDG_STATE_HOME).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgecollect.status import SOCKET_NAME
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]


class AgentProcess:
    """`python -m edgecollect run -c CONFIG` as a real process: started, killed, asked for status."""

    def __init__(self, config: Path, state: Path, log: Path, env: Mapping[str, str | None] | None = None) -> None:
        self.config, self.state, self.log = config, state, log
        merged: dict[str, str | None] = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.env = {k: v for k, v in merged.items() if v is not None}  # the agent's environment
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> AgentProcess:
        out = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgecollect", "run", "-c", str(self.config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=self.env,
        )
        out.close()
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the agent was never started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, signum: int) -> None:
        """A signal to the running agent (SIGHUP: reload)."""
        assert self.proc is not None and self.proc.poll() is None, "the agent is not running"
        self.proc.send_signal(signum)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int | None:
        """SIGTERM (flushes the rings into the spool); SIGKILL if it does not end."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def status(self) -> dict[str, Any] | None:
        """The agent's status document from its socket, or None while it is not answering."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(str(self.state / SOCKET_NAME))
                chunks = []
                while chunk := s.recv(65536):
                    chunks.append(chunk)
            doc: dict[str, Any] = json.loads(b"".join(chunks))
            return doc
        except (OSError, ValueError):
            return None

    def counter(self, name: str) -> dict[str, int]:
        """One counter by name, its labels merged across sources (`name{source=...}` keys)."""
        st = self.status()
        merged: dict[str, int] = {}
        for key, values in (st["counters"] if st else {}).items():
            if key == name or key.startswith(name + "{"):
                for label, n in values.items():
                    merged[label] = merged.get(label, 0) + n
        return merged

    def wait_status(self, check: Callable[[dict[str, Any]], object], what: str,
                    timeout_s: float = 90) -> dict[str, Any]:
        """Until the status document satisfies `check`; returns that document. Fails with the last
        document and the log's tail, at once if the agent exited."""
        seen: list[dict[str, Any]] = []

        def satisfied() -> bool:
            if not self.alive:
                raise AssertionError(f"agent exited with {self.proc and self.proc.returncode} while waiting "
                                     f"for {what}:\n{self.tail()}")
            st = self.status()
            if st is None or not check(st):
                return False
            seen.append(st)
            return True

        wait_until(satisfied, timeout_s, lambda: f"{what}; last status {self.status()}; log:\n{self.tail(3000)}",
                   pause_s=0.2)
        return seen[-1]

    def wait_up(self, timeout_s: float = 60) -> None:
        def up() -> bool:
            if not self.alive:
                raise AssertionError(f"agent exited with {self.proc and self.proc.returncode}:\n{self.tail()}")
            return self.status() is not None
        wait_until(up, timeout_s, "the agent's status socket", pause_s=0.1)

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""
