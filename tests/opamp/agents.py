"""Real edgecollect agents as subprocesses (`python -m edgecollect run`), each with its own state dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from edgecollect.status import SOCKET_NAME, query
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]


def agent_config(endpoint: str, *, accept: bool = True, heartbeat: str = "1s", extra: str = "",
                 tls: str = "tls.insecure = true") -> str:
    """A config without a state_dir: each AgentProcess gets its own through XDG_STATE_HOME, so one
    remote config can be served to many agents."""
    return (extra + '[sources.host]\ninterval = "1s"\n\n'
            f'[opamp]\nendpoint = "{endpoint}"\nheartbeat = "{heartbeat}"\n'
            f'accept_remote_config = {"true" if accept else "false"}\n{tls}\n'
            'headers = { Authorization = "Bearer opamp-literal-token" }\n')


class AgentProcess:
    def __init__(self, workdir: Path, config_text: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.state_dir = workdir / "state" / "edgecollect"
        self.config = workdir / "edgecollect.toml"
        self.config.write_text(config_text)
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        env = {**os.environ, "PYTHONPATH": str(REPO), "XDG_STATE_HOME": str(self.workdir / "state")}
        env.pop("STATE_DIRECTORY", None)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "edgecollect", "run", "-c", str(self.config)],
                                         cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def status(self) -> dict[str, Any] | None:
        try:
            return query(self.state_dir / SOCKET_NAME)
        except (OSError, ValueError):
            return None

    def wait_status(self, check: Any, what: str, timeout_s: float = 90.0) -> dict[str, Any]:
        holder: list[dict[str, Any]] = []

        def ok() -> bool:
            st = self.status()
            if st is not None and check(st):
                holder.append(st)
                return True
            return False

        assert eventually(ok, timeout_s), f"agent never showed {what}; last status {self.status()}; log:\n" + \
            self.log.read_text()[-3000:]
        return holder[0]

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
