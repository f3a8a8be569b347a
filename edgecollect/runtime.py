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
from typing import Protocol

from edgecollect import __version__, statustext
from edgecollect.batcher import Batcher
from edgecollect.buffer import POINT_BYTES, Ring
from edgecollect.clock import Clock
from edgecollect.compaction import CompactionConfig, Compactor
from edgecollect.config import Config
from edgecollect.format.clockrepair import repair_spool_batch
from edgecollect.model import SeriesRegistry
from edgecollect.resource import boot_id, detect
from edgecollect.sources.base import SourceContext
from edgecollect.sources.registry import instances
from edgecollect.sources.selftelemetry import SelfTelemetrySource
from edgecollect.spool import Spool
from edgecollect.statusmodel import AgentStatus, OpampStatus, PointCounts, SourceStatus, SpoolStatus, UpstreamStatus
from edgecollect.telemetry import Telemetry
from edgecollect.timesync import ClockStep, ClockWatcher, SyncDetector

log = logging.getLogger("edgecollect")
CLOSE_GRACE_S = 5.0  # beyond shutdown_timeout, for a source still inside a blocking device call


class Runnable(Protocol):
    def run(self) -> None: ...


class ForwarderLike(Protocol):
    def run(self) -> None: ...
    def notify(self) -> None: ...
    def status(self) -> UpstreamStatus: ...


@dataclass
class _SourceThread:
    ctx: SourceContext
    source: Runnable
    ring: Ring  # what ctx.ring is, with the runtime's full view of it
    thread: threading.Thread | None = None
    on_batcher: bool = False  # sampled on the batcher's tick, no thread of its own


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
            on_tick=self._on_tick,
        )
        self._threads: list[threading.Thread] = []
        self._build_sources()

    # -- wiring -------------------------------------------------------------------------------

    def _context(self, name: str, kind: str, max_series: int | None = None) -> tuple[SourceContext, Ring]:
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
        ctx = SourceContext(
            name, kind, ring, self.stop_event, self.registry, self.telemetry, self.clock, series_budget,
        )
        return ctx, ring

    def add_source(
        self, name: str, kind: str, make: Callable[[SourceContext], Runnable], max_series: int | None = None,
    ) -> SourceContext:
        ctx, ring = self._context(name, kind, max_series)
        self.sources.append(_SourceThread(ctx, make(ctx), ring))
        return ctx

    def _build_sources(self) -> None:
        # One loop for every kind (sources/registry.py); a kind's module is imported here only
        # when the config has one of its sources.
        for kind, name, scfg in instances(self.cfg.sources):
            make = functools.partial(kind.source_class(), scfg)
            self.add_source(name, kind.kind, make, getattr(scfg, "max_series", None))
        interval = self.cfg.agent.self_interval
        self.self_ctx = self.add_source("self", "self", lambda ctx: SelfTelemetrySource(self.telemetry, interval, ctx))
        self._self_source: SelfTelemetrySource | None = None
        if interval == self.cfg.batch.flush_interval:
            # Same cadence as the batcher (the defaults): sample on its tick, just before the cut, and
            # save a thread and its wake-ups (and its collisions with the batcher on the GIL).
            own = self.sources[-1]
            assert isinstance(own.source, SelfTelemetrySource)
            own.on_batcher, self._self_source = True, own.source
        if self.cfg.upstream is not None:
            from edgecollect.exporters.forwarder import Forwarder

            behind = None
            if self.cfg.spool.mode == "write_behind":
                from edgecollect.writebehind import make_write_behind

                behind = make_write_behind(self.spool, self.telemetry, self.stop_event,
                                           timeout_s=self.cfg.spool.write_behind_timeout,
                                           send_interval_s=self.cfg.upstream.send_interval,
                                           max_bytes=self.cfg.spool.write_behind_max_bytes)
                self.batcher.set_behind(behind)
            self.forwarder = Forwarder(self.cfg.upstream, self.spool, self.telemetry, self.stop_event, behind=behind,
                                       max_points=self.cfg.batch.max_points, compactor=self.compactor)

    def _on_tick(self) -> None:
        """The batcher's tick, before its cut: the spool's max_age, and our own counters when sampled here."""
        self.spool.expire()
        if self._self_source is not None and not self.stop_event.is_set():
            try:
                self._self_source.sample()
            except Exception:  # the batcher must outlive a broken sample, as a source thread would
                self._crashes.inc("self")
                log.exception("source self: sampling failed; trying again on the next tick")

    def _on_written(self) -> None:
        if self.forwarder is not None:
            self.forwarder.notify()
        else:
            self.compactor.run()  # offline for good: small files are merged as they come

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.spool.open()
        for st in self.sources:
            if st.on_batcher:
                continue
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

            close_all(st.ring for st in self.sources)

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

    def status(self, opamp: OpampStatus | None = None) -> AgentStatus:
        """The whole status, typed: every view of it (socket, `status`, STATUS=, journal) reads this."""
        spool = self.spool.stats()
        return AgentStatus(
            version=__version__,
            pid=_pid(),
            uptime_s=round(time.time() - self.started_at, 1),
            state_dir=str(self.state_dir),
            config=self.cfg.path,
            clock_synced=not self.clock.flags(),
            series=len(self.registry),
            sources=tuple(self._source_status(st) for st in self.sources),
            spool=SpoolStatus(files=spool.files, bytes=spool.bytes, points=spool.points,
                              oldest_age_s=round(spool.oldest_age_s, 1), max_size=self.spool.max_size),
            upstream=self.forwarder.status() if self.forwarder is not None else None,
            counters=self.telemetry.snapshot(),
            opamp=opamp,
        )

    def _source_status(self, st: _SourceThread) -> SourceStatus:
        ctx, ring = st.ctx, st.ctx.ring
        # The counters SourceContext and _context() made for this source, found by their name and
        # attributes; one not made yet reads 0.
        counters = (self.telemetry.find(f"edgecollect.{ctx.kind}.points_accepted", source=ctx.name),
                    self.telemetry.find(f"edgecollect.{ctx.kind}.points_rejected", source=ctx.name),
                    self.telemetry.find("edgecollect.buffer.dropped", source=ctx.name))
        return SourceStatus(
            name=ctx.name, kind=ctx.kind, running=self._running(st),
            ring_points=len(ring), ring_capacity=ring.capacity, ring_logs=ring.log_count(),
            points=PointCounts(*(c.total() if c is not None else 0 for c in counters)),
        )

    def _running(self, st: _SourceThread) -> bool:
        if st.on_batcher:
            return any(t.name == "batcher" and t.is_alive() for t in self._threads)
        return bool(st.thread and st.thread.is_alive())

    def summary_line(self) -> str:
        """The periodic journal line (statustext.summary_line)."""
        return statustext.summary_line(self.status())


def _pid() -> int:
    import os

    return os.getpid()
