"""Builds and wires the stages, owns the threads, signals and shutdown.

One thread per source, one batcher thread, one forwarder thread (when an upstream is configured),
and the status socket. SIGTERM/SIGINT: sources stop, rings are flushed into the spool, exit 0
within `agent.shutdown_timeout`. SIGHUP: the new config is checked; if valid, the pipeline is
rebuilt around the same spool after flushing every ring, so nothing buffered is lost.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgecollect import __version__
from edgecollect.batcher import Batcher
from edgecollect.buffer import POINT_BYTES, Ring
from edgecollect.clock import Clock
from edgecollect.compaction import CompactionConfig, Compactor
from edgecollect.config import Config
from edgecollect.model import SeriesRegistry
from edgecollect.resource import boot_id, detect
from edgecollect.sources.base import SourceContext
from edgecollect.sources.selftelemetry import SelfTelemetrySource
from edgecollect.spool import Spool
from edgecollect.telemetry import Telemetry
from edgecollect.timesync import ClockStep, ClockWatcher, SyncDetector, repair_spool_batch

log = logging.getLogger("edgecollect")
CLOSE_GRACE_S = 5.0  # beyond shutdown_timeout, for a source still inside a blocking device call


class Runnable(Protocol):
    def run(self) -> None: ...


class ForwarderLike(Protocol):
    def run(self) -> None: ...
    def notify(self) -> None: ...
    def status(self) -> dict[str, Any]: ...


@dataclass
class _SourceThread:
    ctx: SourceContext
    source: Runnable
    thread: threading.Thread | None = None


class Agent:
    def __init__(self, cfg: Config, clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.stop_event = threading.Event()
        self.telemetry = Telemetry()
        self.registry = SeriesRegistry(max_series=cfg.agent.max_series)
        detector = SyncDetector(cfg.agent.clock)
        self.clock = clock or Clock(synced=detector)
        self.resource = detect(cfg.agent.resource)
        self.boot_id = boot_id()
        self.clock_watcher = ClockWatcher(detector, boot_id=self.boot_id)
        self._repaired = self.telemetry.counter("clock", "repairs", "where")
        self.state_dir = cfg.state_dir()
        self.started_at = time.time()
        self.spool = Spool(
            self.state_dir / "spool",
            self.telemetry,
            max_size=cfg.spool.max_size,
            max_age_s=cfg.spool.max_age,
            when_full=cfg.spool.when_full,
            downsample_window_s=cfg.spool.downsample_window,
            sync=cfg.spool.sync,
        )
        self.compactor = Compactor(self.spool, self.telemetry,
                                   CompactionConfig(cfg.spool.compact_points, cfg.spool.compact_size))
        self.sources: list[_SourceThread] = []
        self._crashes = self.telemetry.counter("agent", "source_crashes", "source")
        self.forwarder: ForwarderLike | None = None
        self.batcher = Batcher(
            [], self.registry, self.resource, self.boot_id, self.spool.append, self.telemetry,
            cfg.batch.flush_interval, cfg.batch.max_points, on_written=self._on_written,
            on_tick=self.spool.expire,
        )
        self._threads: list[threading.Thread] = []
        self._build_sources()

    # -- wiring -------------------------------------------------------------------------------

    def _context(self, name: str, kind: str, max_series: int | None = None) -> SourceContext:
        budget = self.cfg.buffer
        capacity = budget.max_points
        if budget.max_bytes is not None:
            capacity = max(1, budget.max_bytes // POINT_BYTES)
        base = {"source": name}
        make_ring: Callable[..., Ring] = Ring
        if self.cfg.processors:  # the package is imported only when the config has [[processors]]
            from edgecollect.processors import ring_factory

            make_ring = ring_factory(self.cfg.processors, name, self.registry, self.telemetry, self.clock)
        ring = make_ring(
            name, capacity, budget.overflow,
            self.telemetry.counter("buffer", "dropped", "policy", base=base),
            self.telemetry.counter("buffer", "logs_dropped", "policy", base=base),
            max_log_bytes=budget.max_log_bytes,
        )
        self.telemetry.gauge("buffer", "points", ring.__len__, base=base)
        self.telemetry.gauge("buffer", "memory", ring.memory_bytes, unit="By", base=base)
        self.batcher.add_ring(ring)
        if kind == "self":  # its own pool: a source's cardinality flood cannot silence our counters
            series_budget = self.registry.budget(name, self.cfg.agent.self_max_series, reserved=True)
        else:
            series_budget = self.registry.budget(name, max_series)
        return SourceContext(
            name, kind, ring, self.stop_event, self.registry, self.telemetry, self.clock, series_budget,
        )

    def add_source(
        self, name: str, kind: str, make: Callable[[SourceContext], Runnable], max_series: int | None = None,
    ) -> SourceContext:
        ctx = self._context(name, kind, max_series)
        self.sources.append(_SourceThread(ctx, make(ctx)))
        return ctx

    def _build_sources(self) -> None:
        srcs = self.cfg.sources
        if srcs.host.enabled:
            from edgecollect.sources.host import HostSource  # psutil only when host metrics are on

            self.add_source("host", "host", lambda ctx: HostSource(srcs.host, ctx), srcs.host.max_series)
        if srcs.mqtt:
            from edgecollect.sources.mqtt import MqttSource  # paho is imported only when used

            for i, mcfg in enumerate(srcs.mqtt):
                self.add_source(f"mqtt.{i}", "mqtt", functools.partial(MqttSource, mcfg), mcfg.max_series)
        if srcs.serial:
            from edgecollect.sources.serial import SerialSource

            for i, scfg in enumerate(srcs.serial):
                self.add_source(f"serial.{i}", "serial", functools.partial(SerialSource, scfg), scfg.max_series)
        for bus in srcs.modbus:
            from edgecollect.sources.modbus.source import ModbusSource  # pymodbus only when used

            self.add_source(f"modbus.{bus.name}", "modbus", functools.partial(ModbusSource, bus))
        if srcs.sysfs.wanted():  # "auto": only where the board has 1-Wire, IIO or hwmon inputs
            from edgecollect.sources.sysfs.source import SysfsSource

            self.add_source("sysfs", "sysfs", functools.partial(SysfsSource, srcs.sysfs))
        interval = self.cfg.agent.self_interval
        self.self_ctx = self.add_source("self", "self", lambda ctx: SelfTelemetrySource(self.telemetry, interval, ctx))
        if self.cfg.upstream is not None:
            from edgecollect.exporters.base import Forwarder

            behind = None
            if self.cfg.spool.mode == "write_behind":
                from edgecollect.writebehind import make_write_behind

                behind = make_write_behind(self.cfg.spool, self.cfg.upstream.send_interval, self.spool,
                                           self.telemetry, self.stop_event)
                self.batcher.set_behind(behind)
            self.forwarder = Forwarder(self.cfg.upstream, self.spool, self.telemetry, self.stop_event, behind=behind,
                                       max_points=self.cfg.batch.max_points, compactor=self.compactor)

    def _on_written(self) -> None:
        if self.forwarder is not None:
            self.forwarder.notify()
        else:
            self.compactor.run()  # offline for good: small files are merged as they come

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.spool.open()
        for st in self.sources:
            st.thread = threading.Thread(target=self._guard, args=(st,), name=f"source-{st.ctx.name}", daemon=True)
            st.thread.start()
        self._spawn("batcher", lambda: self.batcher.run(self.stop_event))
        if self.forwarder is not None:
            self._spawn("forwarder", self.forwarder.run)
            log.info("edgecollect %s: forwarding to %s", __version__, getattr(self.cfg.upstream, "endpoint", "?"))
        else:
            log.info(
                "edgecollect %s: no [upstream] configured: running offline, keeping everything in the spool at %s",
                __version__, self.spool.directory,
            )

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, st: _SourceThread) -> None:
        """Run a source; if it ever raises, count it and restart it after a pause."""
        backoff = 1.0
        while not self.stop_event.is_set():
            try:
                st.source.run()
                return
            except Exception:
                self._crashes.inc(st.ctx.name)
                log.exception("source %s crashed; restarting in %.0fs", st.ctx.name, backoff)
                if self.stop_event.wait(backoff):
                    return
                backoff = min(backoff * 2, 60.0)

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop sources, flush every ring into the spool, stop the rest. Bounded in time."""
        deadline = time.monotonic() + (timeout_s if timeout_s is not None else self.cfg.agent.shutdown_timeout)
        self.stop_event.set()
        self.batcher.wake()
        if self.forwarder is not None:
            self.forwarder.notify()  # it waits on its own wake-up, not on the stop event
        # Flush while sources are still winding down: an MQTT source can then ack its broker for
        # what this flush made durable before it disconnects (otherwise: redelivery, duplicates).
        self._close_processors()  # held deadband points and open aggregate windows go too
        flushed = self.batcher.flush()
        for st in self.sources:
            if st.thread is not None:
                st.thread.join(max(0.0, deadline - time.monotonic() - 0.5))
        self._close_processors()  # what arrived while the sources wound down
        self.self_ctx.emit(self.telemetry.points())  # the last word on our own counters
        flushed += self.batcher.flush()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        log.info("edgecollect stopped: %d points flushed to the spool at shutdown", flushed)

    def _close_processors(self) -> None:
        if self.cfg.processors:
            from edgecollect.processors import close_all

            close_all(st.ctx.ring for st in self.sources)

    def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """After shutdown(): release everything this pipeline holds, so a reload leaks nothing.

        Threads are joined (a source still inside a blocking call gets `grace_s` more), then the
        references that keep rings and sockets reachable are dropped: gauge callbacks, source
        objects and contexts, the batcher's rings. A thread that still does not end is logged by
        name; whatever it holds stays until it returns.
        """
        self.stop_event.set()
        deadline = time.monotonic() + grace_s
        threads = [st.thread for st in self.sources if st.thread is not None] + self._threads
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck:
            log.warning("threads still running after shutdown (their memory is held until they end): %s",
                        ", ".join(stuck))
        self._threads = [t for t in self._threads if t.is_alive()]
        for st in self.sources:
            st.thread = None
        self.sources.clear()
        self.forwarder = None
        self.telemetry.clear()

    # -- clock -------------------------------------------------------------------------------

    def poll_clock(self) -> None:
        """Called from the main loop: when the wall clock steps into sync, repair what we hold."""
        step = self.clock_watcher.poll()
        if step is None:
            return
        self.registry.shift_start_times(step.before_ns, step.delta_ns)
        self.batcher.clock_step(step)
        self.batcher.wake()
        # Spooled files of this boot are rewritten off the main loop so the watchdog keeps beating.
        self._threads = [t for t in self._threads if t.is_alive()]
        self._spawn("clock-repair", functools.partial(self._repair_spool, step))

    def _repair_spool(self, step: ClockStep) -> None:
        for batch in self.spool.list():
            payload = self.spool.read(batch.id)
            if payload is None:
                continue
            try:
                fixed = repair_spool_batch(
                    payload, step.delta_ns, step.boot_id,
                    before_ns=step.before_ns, until_ns=step.until_ns, mark=step.synced,
                )
                if fixed is not payload and self.spool.rewrite(batch.id, fixed):
                    self._repaired.inc("spool")
            except Exception:
                log.exception("clock repair of spool batch %d failed; left as it was (flagged)", batch.id)

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        spool = self.spool.stats()
        sources = {}
        for st in self.sources:
            ring = st.ctx.ring
            sources[st.ctx.name] = {
                "kind": st.ctx.kind,
                "ring_points": len(ring),
                "ring_capacity": ring.capacity,
                "ring_logs": ring.log_count(),
                "alive": bool(st.thread and st.thread.is_alive()),
            }
        upstream: dict[str, Any] = {"state": "offline", "reason": "no [upstream] configured"}
        if self.forwarder is not None:
            upstream = self.forwarder.status()
        return {
            "version": __version__,
            "pid": _pid(),
            "uptime_s": round(time.time() - self.started_at, 1),
            "state_dir": str(self.state_dir),
            "config": self.cfg.path,
            "clock_synced": not self.clock.flags(),
            "series": len(self.registry),
            "sources": sources,
            "spool": {
                "files": spool.files, "bytes": spool.bytes, "points": spool.points,
                "oldest_age_s": round(spool.oldest_age_s, 1), "max_size": self.spool.max_size,
            },
            "upstream": upstream,
            "counters": self.telemetry.snapshot(),
        }

    def summary_line(self) -> str:
        st = self.status()
        c = st["counters"]
        accepted = sum(sum(v.values()) for k, v in c.items() if ".points_accepted" in k)
        dropped = sum(sum(v.values()) for k, v in c.items() if k.startswith("edgecollect.buffer.dropped"))
        rejected = sum(sum(v.values()) for k, v in c.items() if ".points_rejected" in k)
        line = (
            f"points accepted={accepted} dropped={dropped} rejected={rejected} series={st['series']} "
            f"spool files={st['spool']['files']} bytes={st['spool']['bytes']} oldest={st['spool']['oldest_age_s']}s"
        )
        if self.forwarder is None:
            return line + " upstream=offline (none configured)"
        from edgecollect.exporters.base import format_status

        return line + "; " + format_status(st["upstream"])


def _pid() -> int:
    import os

    return os.getpid()
