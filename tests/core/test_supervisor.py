"""The main loop: it sleeps until something is due or a request arrives; stop always wins over reload."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgecollect.clock import Clock
from edgecollect.clockchange import ClockAlarm, ClockChangeAlarm
from edgecollect.config import Config, load
from edgecollect.runtime import Agent
from edgecollect.sdnotify import Notifier
from edgecollect.signals import Wakeup
from edgecollect.status import SOCKET_NAME
from edgecollect.supervisor import Supervisor
from tests.core.test_clockchange import set_wall_clock
from tests.support.wait import eventually


def _config(state: Path) -> Path:
    path = state.parent / f"{state.name}.toml"
    path.write_text(f"[agent]\nstate_dir = '{state}'\nclock = 'assume_synced'\nsummary_interval = '1h'\n"
                    "self_interval = '1h'\n[sources.host]\nenabled = false\n", encoding="utf-8")
    return path


class _Run:
    def __init__(self, path: Path, notifier: Notifier | None = None, clock: Clock | None = None,
                 wakeup: Wakeup | None = None,
                 clock_alarm: Callable[[], ClockAlarm | None] = ClockChangeAlarm.open) -> None:
        self.wakeup = wakeup or Wakeup()
        self.made: list[Agent] = []
        self.clock_polls = 0

        def make(c: Config) -> Agent:
            agent = Agent(c, clock=clock)
            poll = agent.poll_clock

            def counted() -> None:
                self.clock_polls += 1
                poll()

            agent.poll_clock = counted  # type: ignore[method-assign]
            self.made.append(agent)
            return agent

        self.supervisor = Supervisor(load(str(path)), str(path), self.wakeup, make, notifier or Notifier(env={}),
                                     clock_alarm)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.supervisor.run()

    def finish(self) -> int | None:
        self.wakeup.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.wakeup.close()
        return self.code


def test_an_idle_agent_main_loop_does_not_tick(tmp_path: Path) -> None:
    run = _Run(_config(tmp_path / "state"))
    assert eventually(lambda: (tmp_path / "state" / SOCKET_NAME).exists())
    time.sleep(3.0)  # the old loop woke every second; nothing is due for 30 s (clock) and 1 h (summary)
    # A clock step (another test on this machine stepping it) is an event, not a tick.
    assert run.supervisor.wakeups - run.supervisor.clock_changes == 0
    assert run.finish() == 0
    assert run.supervisor.wakeups - run.supervisor.clock_changes == 1  # the stop request itself


def test_an_unsynchronised_clock_is_polled_every_second_where_the_kernel_cannot_report_steps(
        tmp_path: Path) -> None:
    run = _Run(_config(tmp_path / "state"), clock=Clock(synced=lambda: False), clock_alarm=lambda: None)
    try:
        assert eventually(lambda: run.clock_polls >= 5), "the watcher is polled while the clock is unsynced"
    finally:
        assert run.finish() == 0


def test_an_unsynchronised_clock_is_still_polled_with_the_kernel_alarm(tmp_path: Path) -> None:
    # Backing off from 1 s: the turn to "synchronised" without a step is only seen by polling.
    run = _Run(_config(tmp_path / "state"), clock=Clock(synced=lambda: False))
    try:
        assert eventually(lambda: run.clock_polls >= 2), "the watcher is polled while the clock is unsynced"
    finally:
        assert run.finish() == 0


def test_a_clock_step_wakes_the_main_loop_to_poll_the_watcher(tmp_path: Path) -> None:
    # A synchronised clock is polled every 30 s; a real clock set (to its own reading) is polled at once.
    run = _Run(_config(tmp_path / "state"))
    try:
        assert eventually(lambda: (tmp_path / "state" / SOCKET_NAME).exists())
        polls = run.clock_polls
        set_wall_clock()
        assert eventually(lambda: run.supervisor.clock_changes >= 1 and run.clock_polls > polls, 10.0), \
            "the kernel's clock-change alarm did not reach the main loop"
    finally:
        assert run.finish() == 0


def test_the_watchdog_still_beats_at_half_its_timeout(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify.sock"))
    listener.settimeout(10)
    notifier = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"})
    run = _Run(_config(tmp_path / "state"), notifier)
    try:
        beats = 0
        while beats < 5:
            if b"WATCHDOG=1" in listener.recv(4096):
                beats += 1
    finally:
        assert run.finish() == 0
        listener.close()


def test_stop_and_reload_requested_together_stop_without_reloading(tmp_path: Path) -> None:
    # Both pending before the main loop looks (a reload first): requested from this thread while
    # the loop runs, the loop could take the reload before the stop arrives, which is not "together".
    pending = Wakeup()
    pending.request_reload()
    pending.request_stop()
    run = _Run(_config(tmp_path / "state"), wakeup=pending)
    run.thread.join(30)
    assert run.code == 0
    assert len(run.made) == 1


def test_a_reload_builds_a_new_pipeline_and_releases_the_old_one(tmp_path: Path) -> None:
    run = _Run(_config(tmp_path / "state"))
    assert eventually(lambda: (tmp_path / "state" / SOCKET_NAME).exists())
    run.wakeup.request_reload()
    assert eventually(lambda: len(run.made) == 2 and (tmp_path / "state" / SOCKET_NAME).exists())
    old = run.made[0]
    assert old.sources == [] and old.telemetry.counters() == [] and old.telemetry.gauges() == []
    assert run.finish() == 0


def test_a_config_that_fails_to_start_is_rolled_back_and_reported(tmp_path: Path) -> None:
    # A real failure, not a stub: no spool can be made under /proc, so the new pipeline cannot start.
    run = _Run(_config(tmp_path / "state"))
    try:
        assert eventually(lambda: (tmp_path / "state" / SOCKET_NAME).exists())
        good = load(str(_config(tmp_path / "state")))
        broken = dataclasses.replace(good, agent=dataclasses.replace(good.agent, state_dir="/proc/edgecollect-cannot"))
        said: list[str | None] = []
        run.supervisor.request_reload(broken, said.append)
        assert eventually(lambda: said, 30), "the reload never finished"
        assert said[0] is not None and "/proc/edgecollect-cannot" in said[0], said
        # The previous config runs again: a pipeline in the original state_dir answers its socket.
        assert eventually(lambda: len(run.made) >= 3 and (tmp_path / "state" / SOCKET_NAME).exists())
        assert run.made[-1].state_dir == tmp_path / "state"
    finally:
        assert run.finish() == 0


class _BrokenAlarm:
    """Reports one clock change and cannot be armed again (what ClockChangeAlarm.take says then)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.write(self._write, b"x")
        self.broken = False
        self.closed = False

    def fileno(self) -> int:
        return self._read

    def take(self) -> bool:
        os.read(self._read, 1)
        self.broken = True
        return True

    def close(self) -> None:
        self.closed = True
        os.close(self._read)
        os.close(self._write)


def test_an_alarm_that_cannot_be_rearmed_is_dropped_and_the_clock_polled_instead(tmp_path: Path) -> None:
    alarm = _BrokenAlarm()
    run = _Run(_config(tmp_path / "state"), clock=Clock(synced=lambda: False), clock_alarm=lambda: alarm)
    try:
        assert eventually(lambda: alarm.closed), "the main loop let go of the broken alarm"
        polls = run.clock_polls
        assert eventually(lambda: run.clock_polls > polls), "the clock is still polled"
    finally:
        assert run.finish() == 0
