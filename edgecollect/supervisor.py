"""The main loop around an Agent: start, watchdog, periodic summary, reload on SIGHUP, stop.

The loop sleeps until the next thing that is due — a watchdog beat (half of WATCHDOG_USEC, only
when systemd armed one), the summary line, a clock poll — or until a stop/reload request wakes it
(`signals.Wakeup`). Nothing due means no wake-up: an idle agent's main thread sleeps for the whole
summary interval instead of ticking every second.

Clock polls (clockchange.py): the kernel wakes the loop when the wall clock is set (a timerfd
cancelled on clock changes), so a step is polled at once; what is left to poll for is the clock
turning synchronised without a step, polled from every second backing off to every 30 s while
nothing changes. Once synchronised, every 30 s (rows stamped then are not flagged: the poll only
notices a loss of sync). Where the kernel cannot wake us, every second while unsynchronised, as
that poll is then what bounds how ambiguous a step's edge is.

A reload tears the old pipeline down completely before the new one starts (Agent.close): its
threads joined, its rings and counters released, its reference cycles collected at once, so RSS
and descriptors do not grow with the number of reloads.
"""

from __future__ import annotations

import functools
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from edgecollect.clockchange import ClockAlarm, ClockChangeAlarm, ClockPollSchedule
from edgecollect.config import Config, load
from edgecollect.errors import ConfigError
from edgecollect.heap import return_large_frees
from edgecollect.runtime import Agent
from edgecollect.sdnotify import Notifier
from edgecollect.signals import Wakeup
from edgecollect.status import SOCKET_NAME, StatusServer
from edgecollect.statusmodel import AgentStatus
from edgecollect.statustext import notify_line

log = logging.getLogger("edgecollect")


class Supervisor:
    def __init__(
        self,
        cfg: Config,
        config_path: str | None,
        wakeup: Wakeup,
        make_agent: Callable[[Config], Agent],
        notifier: Notifier | None = None,
        clock_alarm: Callable[[], ClockAlarm | None] = ClockChangeAlarm.open,
    ) -> None:
        self._cfg = cfg
        self._path = config_path
        self._wakeup = wakeup
        self._make_agent = make_agent
        self._notify = notifier or Notifier()
        self._open_clock_alarm = clock_alarm
        self._status: StatusServer | None = None
        self._agent: Agent | None = None  # the running pipeline, for the status snapshot
        self.wakeups = 0  # main-loop wake-ups, for the footprint benchmark and tests
        self.clock_polls = 0  # ClockWatcher polls, and clock changes the kernel reported (tests)
        self.clock_changes = 0
        # A reload asked for by another thread (OpAMP) with its own config and a completion callback.
        self._requested: tuple[Config, Callable[[str | None], None]] | None = None
        self._opamp: Any = None  # edgecollect.opamp.client.OpampClient when [opamp] is configured

    def request_reload(self, cfg: Config, done: Callable[[str | None], None]) -> None:
        """Reload with `cfg` (already validated) from another thread; `done(None)` once it runs,
        or `done(reason)` when it failed to start and the previous config runs again."""
        self._requested = (cfg, done)
        self._wakeup.request_reload()

    def run(self) -> int:
        return_large_frees()  # rejected big payloads and replaced pipelines leave no RSS behind
        # Armed before the first pipeline (and its ClockWatcher) exists, so no step after that is missed.
        alarm = self._open_clock_alarm()
        if self._cfg.opamp is not None:
            from edgecollect.opamp.files import startup_config

            self._cfg = startup_config(self._cfg)
        if self._cfg.opamp is not None:  # made before the first start, so `status` always shows it
            from edgecollect.opamp.client import OpampClient, blocking_reload

            self._opamp = OpampClient(self._cfg, self._cfg.state_dir(), self._agent_status,
                                      blocking_reload(self.request_reload))
        agent = self._start(self._cfg)
        if self._opamp is not None:
            self._opamp.start()
        # READY=1 once the sources run: systemd orders dependants and starts the watchdog here.
        self._notify.ready(self._status_text(agent))
        beat_every = self._notify.watchdog_interval_s()
        polls = ClockPollSchedule(notified=alarm is not None)
        now = time.monotonic()
        next_beat = now if beat_every is not None else None
        next_summary = now + agent.cfg.agent.summary_interval
        next_clock = now + polls.after_poll(self._clock_synced(agent))
        while True:
            due = [next_summary, next_clock] + ([next_beat] if next_beat is not None else [])
            timeout = max(0.0, min(due) - time.monotonic())
            clock_set = self._wakeup.wait(timeout, alarm.fileno() if alarm is not None else None)
            self.wakeups += 1
            if clock_set and alarm is not None and alarm.take():
                self.clock_changes += 1
                polls.clock_changed()
                next_clock = time.monotonic()  # poll now: the step's edge is as sharp as this wake-up
                if alarm.broken:  # it could not be armed again: poll every second from here on
                    alarm.close()
                    alarm = None
                    polls = ClockPollSchedule(notified=False)
            if self._wakeup.stop_requested:  # checked first: a stop is never lost to a reload
                break
            if self._wakeup.take_reload():
                self._notify.reloading("reloading config")
                wanted = self._reload_config()
                if wanted is not None:
                    agent = self._replace(agent, *wanted)
                self._notify.ready(self._status_text(agent))
                now = time.monotonic()
                next_summary = now + agent.cfg.agent.summary_interval
                polls.clock_changed()  # a new pipeline: its watcher starts from scratch
                next_clock = now + polls.after_poll(self._clock_synced(agent))
                if next_beat is not None:
                    next_beat = now  # a reload may have taken a while: beat at once
                continue
            now = time.monotonic()
            # The watchdog beats from this loop, so a wedged main loop gets the agent restarted.
            if next_beat is not None and beat_every is not None and now >= next_beat:
                self._notify.watchdog()
                next_beat = now + beat_every
            if now >= next_clock:
                agent.poll_clock()
                self.clock_polls += 1
                next_clock = now + polls.after_poll(self._clock_synced(agent))
            if now >= next_summary:
                log.info("%s", agent.summary_line())
                self._notify.status(self._status_text(agent))
                next_summary = now + agent.cfg.agent.summary_interval
        if alarm is not None:
            alarm.close()
        log.info("%s: flushing and stopping", self._wakeup.stop_reason or "stop requested")
        self._notify.stopping("flushing rings into the spool")
        if self._opamp is not None:
            self._opamp.stop()
        self._teardown(agent)
        return 0

    @staticmethod
    def _clock_synced(agent: Agent) -> bool:
        # Asked of the clock that stamps samples too (not only the watcher's last poll), so the
        # first poll after samples start being flagged unsynchronised comes within a second.
        return agent.clock_watcher.synced and not agent.clock.flags()

    @staticmethod
    def _status_text(agent: Agent) -> str:
        return notify_line(agent.status())

    def _start(self, cfg: Config) -> Agent:
        agent = self._make_agent(cfg)
        self._agent = agent  # before start: a start that fails half-way is torn down by the caller
        agent.start()
        self._status = StatusServer(agent.state_dir / SOCKET_NAME, functools.partial(self._snapshot, agent))
        self._status.start()
        if self._opamp is not None:
            self._opamp.set_running(cfg)
        return agent

    def _agent_status(self) -> AgentStatus | None:
        """For OpAMP's health report: None while a reload has no pipeline running."""
        agent = self._agent
        return agent.status() if agent is not None else None

    def _snapshot(self, agent: Agent) -> AgentStatus:
        return agent.status(opamp=self._opamp.status() if self._opamp is not None else None)

    def _reload_config(self) -> tuple[Config, Callable[[str | None], None] | None] | None:
        """The new config (and, for a remote one, whom to tell) if it is valid; None keeps the
        running pipeline as it is."""
        requested, self._requested = self._requested, None
        if requested is not None:
            return requested
        try:
            cfg = load(self._path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return None
        if cfg.opamp is not None:  # an applied remote config outranks the local file, as at start
            from edgecollect.opamp.files import startup_config

            cfg = startup_config(cfg)
        log.info("reloading config from %s", cfg.path)
        return cfg, None

    def _replace(self, agent: Agent, new_cfg: Config, done: Callable[[str | None], None] | None) -> Agent:
        """Tear the old pipeline down, start the new one; a config that fails to start is rolled
        back to the old config (and, for a remote one, reported through `done`)."""
        old_cfg = agent.cfg
        self._teardown(agent)
        del agent  # the last reference: the collection below frees the old pipeline
        # The old pipeline is a web of cycles (contexts, callbacks, gauges); collect it now rather
        # than at the cyclic GC's next full pass, maybe many reloads away.
        gc.collect()
        try:
            started = self._start(new_cfg)
        except Exception as exc:  # noqa: BLE001 - any failure to start is rolled back, whatever raised it
            log.error("the new config failed to start (%s): rolling back to %s", exc, old_cfg.path)
            if self._agent is not None:  # failed half-way: release what it had opened
                try:
                    self._teardown(self._agent)
                except Exception:
                    log.exception("releasing the pipeline that failed to start")
            started = self._start(old_cfg)
            if done is not None:
                done(f"{type(exc).__name__}: {exc}")
            return started
        if done is not None:
            done(None)
        return started

    def _teardown(self, agent: Agent) -> None:
        """Flush the old pipeline into the spool, then release all it holds (threads, sockets, rings)."""
        if self._status is not None:
            self._status.stop()
            self._status = None
        self._agent = None
        agent.shutdown()
        agent.close()
