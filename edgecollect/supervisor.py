"""The main loop around an Agent: start, watchdog, periodic summary, reload on SIGHUP, stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

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

    def run(self) -> int:
        agent = self._start(self._cfg)
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
        self._status = StatusServer(agent.state_dir / SOCKET_NAME, agent.status)
        self._status.start()
        return agent

    def _reloaded(self, agent: Agent) -> Agent:
        """Swap in the new config only if it is valid; the old pipeline is flushed first."""
        try:
            new_cfg = load(self._path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            return agent
        log.info("reloading config from %s", self._path or "<defaults>")
        self._status.stop()
        agent.shutdown()
        return self._start(new_cfg)
