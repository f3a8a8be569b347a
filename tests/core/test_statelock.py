"""One agent per state_dir (issue 10 item 1), with real agent processes.

A second `run` on the same state_dir must exit non-zero naming the holder's pid, before it touches
the status socket or the spool; `status` and `spool ls/export` keep working beside the running
agent; the lock dies with its process, kill -9 included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgecollect.status import SOCKET_NAME
from tests.chaos.harness import agent_toml
from tests.support.agent import AgentProcess
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Callable[[Path], AgentProcess]]:
    made: list[AgentProcess] = []

    def make(state: Path) -> AgentProcess:
        config = tmp_path / f"agent{len(made)}.toml"
        config.write_text(agent_toml(state, self_interval="1s"), encoding="utf-8")
        agent = AgentProcess(config, state, tmp_path / f"agent{len(made)}.log")
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.stop()


def edgecollect(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edgecollect", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def test_a_second_run_is_refused_naming_the_pid_and_leaves_the_first_alone(
    agents: Callable[[Path], AgentProcess], tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    first = agents(state).start()
    first.wait_up()
    assert first.proc is not None
    sock_before = os.stat(state / SOCKET_NAME).st_ino

    second = edgecollect("run", "-c", str(first.config))

    assert second.returncode != 0
    assert f"pid {first.proc.pid}" in second.stderr and "in use" in second.stderr, second.stderr
    assert os.stat(state / SOCKET_NAME).st_ino == sock_before, "the second agent replaced the status socket"
    assert first.alive and first.status() is not None
    assert first.stop() == 0, first.tail()


def test_systemds_state_directory_counts_as_the_same_state_dir(
    agents: Callable[[Path], AgentProcess], tmp_path: Path,
) -> None:
    # What `sudo edgecollect run` beside the service amounts to: no state_dir in the config, the
    # default resolving to the running agent's folder.
    state = tmp_path / "state"
    first = agents(state).start()
    first.wait_up()
    bare = tmp_path / "bare.toml"
    bare.write_text("[sources.host]\nenabled = false\n", encoding="utf-8")
    second = edgecollect("run", "-c", str(bare), env={"STATE_DIRECTORY": str(state)})
    assert second.returncode != 0 and "in use" in second.stderr, second.stderr
    assert first.status() is not None


def test_status_and_spool_commands_work_beside_a_running_agent(
    agents: Callable[[Path], AgentProcess], tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    first = agents(state).start()
    first.wait_up()
    wait_until(lambda: any((state / "spool").glob("*.ecb")), 60, "a spooled batch")
    status = edgecollect("status", "-c", str(first.config))
    assert status.returncode == 0, status.stderr
    listing = edgecollect("spool", "ls", "-c", str(first.config))
    assert listing.returncode == 0 and "total" in listing.stdout, listing.stderr
    export = edgecollect("spool", "export", "--format", "arrow", str(tmp_path / "out.arrow"), "-c", str(first.config))
    assert export.returncode == 0, export.stdout + export.stderr
    assert first.alive
    again = edgecollect("run", "-c", str(first.config))
    assert again.returncode != 0, "a read-only command released or broke the lock"


def test_the_lock_dies_with_a_killed_agent(agents: Callable[[Path], AgentProcess], tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = agents(state).start()
    first.wait_up()
    first.kill9()
    second = agents(state).start()
    second.wait_up()
    assert second.stop() == 0, second.tail()


def test_a_reload_cannot_move_the_agent_out_of_its_locked_state_dir(
    agents: Callable[[Path], AgentProcess], tmp_path: Path,
) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    first = agents(state).start()
    first.wait_up()
    assert first.proc is not None
    first.config.write_text(agent_toml(elsewhere, self_interval="1s"), encoding="utf-8")
    first.proc.send_signal(signal.SIGHUP)
    wait_until(lambda: "takes effect at the next start" in first.tail(), 60, "the reload's refusal to move")
    first.wait_up()
    assert not elsewhere.exists(), "the reloaded agent wrote to a state_dir it does not hold"
    assert first.status() is not None and (first.status() or {}).get("state_dir") == str(state)
    original = tmp_path / "original.toml"
    original.write_text(agent_toml(state), encoding="utf-8")
    again = edgecollect("run", "-c", str(original))
    assert again.returncode != 0 and "in use" in again.stderr, "the reload let go of the lock"
    assert first.stop() == 0, first.tail()


def test_a_lock_file_made_by_root_stays_usable_by_the_services_user() -> None:
    assert os.geteuid() == 0, "handing the lock file to the folder's owner needs root (CI runs as root)"

    # Under /tmp itself: pytest's own folders are root's alone, so nobody could not reach one.
    with tempfile.TemporaryDirectory(prefix="edgecollect-lock-") as top:
        os.chmod(top, 0o755)
        _root_made_lock_is_usable_by(Path(top) / "state")


def _root_made_lock_is_usable_by(state: Path) -> None:
    from edgecollect.statelock import StateLock

    state.mkdir()
    nobody = 65534
    os.chown(state, nobody, nobody)
    with StateLock(state):  # `sudo edgecollect run` with the service stopped
        pass
    assert (state / "agent.lock").stat().st_uid == nobody

    # The service's user locks it again: a forked child (the interpreter under /root is not
    # nobody's to exec) drops to that user and reports whether it could write its pid.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.setgid(nobody)
            os.setuid(nobody)
            lock = StateLock(state)
            lock.acquire()
            os.write(write_end, lock.path.read_bytes())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    written = os.read(read_end, 64).decode().strip()
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert written == str(pid)  # it could write its pid: the file is the user's
