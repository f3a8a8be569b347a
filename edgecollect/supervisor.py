"""The main loop around an Agent: start, watchdog, periodic summary, reload on SIGHUP, stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edgecollect.config import Config, load
from edgecollect.errors import ConfigError
from edgecollect.runtime import Agent
from edgecollect.sdnotify import Notifier
from edgecollect.status import SOCKET_NAME, StatusServer

log = logging.getLogger("edgecollect")
TICK_S = 1.0


class Supervisor:
    def __init__(
        self,
        cfg: Config,
        config_path: str | None,
        stop: threading.Event,
        reload_requested: threading.Event,
        make_agent: Callable[[Config], Agent],
    ) -> None:
        self._cfg = cfg
        self._path = config_path
        self._stop = stop
        self._reload = reload_requested
        self._make_agent = make_agent
        self._notify = Notifier()
        # A reload asked for by another thread (OpAMP) with its own config and a completion callback.
        self._requested: tuple[Config, Callable[[str | None], None]] | None = None
        self._opamp: Any = None  # edgecollect.opamp.client.OpampClient when [opamp] is configured

    def request_reload(self, cfg: Config, done: Callable[[str | None], None]) -> None:
        """Reload with `cfg` (already validated) from another thread; `done(None)` once it runs,
        or `done(reason)` when it failed to start and the previous config runs again."""
        self._requested = (cfg, done)
        self._reload.set()
        self._stop.set()

    def run(self) -> int:
        if self._cfg.opamp is not None:
            from edgecollect.opamp.files import startup_config

            self._cfg = startup_config(self._cfg)
        if self._cfg.opamp is not None:  # made before the first start, so `status` always shows it
            from edgecollect.opamp.client import OpampClient, blocking_reload

            self._opamp = OpampClient(self._cfg, self._cfg.state_dir(), lambda: self._agent.status(),
                                      blocking_reload(self.request_reload))
        agent = self._start(self._cfg)
        if self._opamp is not None:
            self._opamp.start()
        # READY=1 once the sources run: systemd orders dependants and starts the watchdog here.
        self._notify.ready(self._status_text(agent))
        next_summary = time.monotonic() + agent.cfg.agent.summary_interval
        while True:
            self._stop.wait(TICK_S)
            if self._reload.is_set():
                self._reload.clear()
                self._stop.clear()
                self._notify.reloading("reloading config")
                agent = self._reloaded(agent)
                self._notify.ready(self._status_text(agent))
                continue
            if self._stop.is_set():
                break
            # The watchdog beats from this loop, so a wedged main loop gets the agent restarted.
            self._notify.watchdog()
            agent.poll_clock()
            if time.monotonic() >= next_summary:
                log.info("%s", agent.summary_line())
                self._notify.status(self._status_text(agent))
                next_summary = time.monotonic() + agent.cfg.agent.summary_interval
        self._notify.stopping("flushing rings into the spool")
        if self._opamp is not None:
            self._opamp.stop()
        self._status.stop()
        agent.shutdown()
        return 0

    @staticmethod
    def _status_text(agent: Agent) -> str:
        st = agent.status()
        up = st["upstream"]
        return (f"backlog {st['spool']['files']} batches / {st['spool']['bytes']} bytes; "
                f"upstream {up.get('state')}")

    def _start(self, cfg: Config) -> Agent:
        agent = self._make_agent(cfg)
        agent.start()
        self._agent = agent
        self._status = StatusServer(agent.state_dir / SOCKET_NAME, self._snapshot)
        self._status.start()
        if self._opamp is not None:
            self._opamp.set_running(cfg)
        return agent

    def _snapshot(self) -> dict[str, Any]:
        snapshot = self._agent.status()
        if self._opamp is not None:
            snapshot["opamp"] = self._opamp.status()
        return snapshot

    def _reloaded(self, agent: Agent) -> Agent:
        """Swap in the new config only if it is valid; the old pipeline is flushed first."""
        requested, self._requested = self._requested, None
        if requested is not None:
            new_cfg, done = requested
        else:
            try:
                new_cfg = load(self._path)
            except ConfigError as exc:
                log.error("reload refused, keeping the running config: %s", exc)
                return agent
            if new_cfg.opamp is not None:  # an applied remote config outranks the local file, as at start
                from edgecollect.opamp.files import startup_config

                new_cfg = startup_config(new_cfg)
        log.info("reloading config from %s", new_cfg.path)
        self._status.stop()
        agent.shutdown()
        if requested is None:
            return self._start(new_cfg)
        try:
            started = self._start(new_cfg)
        except Exception as exc:  # noqa: BLE001 - any failure to start is rolled back, whatever raised it
            log.error("the new config failed to start (%s): rolling back to %s", exc, agent.cfg.path)
            started = self._start(agent.cfg)
            done(f"{type(exc).__name__}: {exc}")
            return started
        done(None)
        return started
