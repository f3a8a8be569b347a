"""The forwarder: the exporter thread that drains the spool (design.md, "exporter").

Owns: the order and pace of what leaves (gather.py, pacing.py), the window of batches in flight,
and what a verdict does to the spool. The forwarder is the only code that deletes from the spool,
and only on an `ok` Delivery (invariant 3); a `reject` quarantines the batch (never loop on
poison); a `retry` leaves it spooled and backs off (capped, jittered, exponential) for as long as
the spool holds data. The exporter it drives comes from registry.py, by `upstream.protocol`.

Must never: delete a batch the upstream did not acknowledge; busy-loop while offline (it sleeps
on the stop event, and after a failure it probes with one batch per signal until an ok); log a
header value (only where it comes from, via configtypes.redact).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from edgecollect.coalesce import coalesce
from edgecollect.errors import SpoolFault
from edgecollect.exporters.contracts import SIGNALS, Delivery, ExporterFactory, Outgoing, Signal
from edgecollect.exporters.gather import Gatherer
from edgecollect.exporters.pacing import DrainRate, TokenBucket, backoff_delay
from edgecollect.exporters.registry import make_exporter
from edgecollect.statusmodel import Backlog, Delivered, UpstreamStatus
from edgecollect.telemetry import Telemetry
from edgecollect.writebehind import HELD_BASE

if TYPE_CHECKING:
    from edgecollect.compaction import Compactor
    from edgecollect.exporters.upstream import UpstreamConfig
    from edgecollect.spool import Spool
    from edgecollect.writebehind import WriteBehind

log = logging.getLogger(__name__)

State = Literal["idle", "connected", "fallback", "backoff", "offline"]


@dataclass(slots=True)
class _Flight:
    signal: Signal
    points: int


_NEEDS_A_PERSON = frozenset({"tls", "config", "unauthenticated", "permission_denied", "unimplemented"})
# Nothing to send: notify(), verdicts and the hold's deadline wake us; shutdown notifies too. Long,
# so that an agent at rest does not wake every second for nothing.
IDLE_WAIT_S = 30.0
ACTIVE_WAIT_S = 0.5  # batches in flight: exporters need a tick for ack timeouts and rotation
CLOSE_TIMEOUT_S = 2.0  # at shutdown, how long unanswered batches may still be acknowledged


class Forwarder:
    """The exporter thread: drains the spool oldest first through one Exporter.

    `run()` blocks until `stop` is set. The batcher calls `notify()` after each spool append so a
    fresh batch leaves at once instead of at the next idle tick.
    """

    def __init__(
        self,
        cfg: UpstreamConfig,
        spool: Spool,
        telemetry: Telemetry,
        stop: threading.Event,
        *,
        exporter_factory: ExporterFactory | None = None,
        rng: random.Random | None = None,
        behind: WriteBehind | None = None,
        max_points: int = 5000,
        compactor: Compactor | None = None,
    ) -> None:
        self._cfg = cfg
        self._spool = spool
        self._stop = stop
        self._wake = threading.Event()
        self._rng = rng or random.Random()
        self._exporter = (exporter_factory or make_exporter)(cfg, telemetry, self._wake.set)
        self._behind = behind
        self._compactor = compactor
        if behind is not None:
            behind.set_wake(self._wake.set)
        self._in_flight: dict[int, _Flight] = {}
        self._gather = Gatherer(spool, behind, max_points, self._load)
        self._groups: dict[int, list[tuple[int, int]]] = {}  # coalesced key -> (member id, points)
        self._member_of: dict[int, int] = {}  # member id -> coalesced key
        self._failures = 0
        self._resume_at = 0.0
        self._probing = True  # one batch per signal until the upstream has said ok once
        self._bucket = TokenBucket(cfg.rate_limit) if cfg.rate_limit else None
        self._drain = DrainRate()
        self._lock = threading.Lock()
        self._state: State = "idle"
        self._last_error = ""
        self._last_error_at = 0.0
        self._logged_error = ""
        self._delivered = telemetry.counter("upstream", "batches_delivered", "protocol")
        self._points = telemetry.counter("upstream", "points_delivered", "protocol")
        self._retries = telemetry.counter("upstream", "retries", "reason")
        self._quarantined = telemetry.counter("upstream", "quarantined", "reason")
        telemetry.gauge("upstream", "drain_rate", self._drain.rate, unit="{point}/s")

    # -- the batcher's side -------------------------------------------------------------------

    def notify(self) -> None:
        """New batches were spooled (or stop was set): stop waiting."""
        self._wake.set()

    # -- the thread ---------------------------------------------------------------------------

    def run(self) -> None:
        log.info("upstream %s (%s): forwarding spooled batches", self._cfg.endpoint, self._cfg.protocol)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    self._step()
                except Exception as exc:  # a bug must not end forwarding for good
                    log.exception("upstream forwarder: unexpected error; backing off")
                    self._back_off(Delivery(-1, "retry", "internal_error", f"internal error: {exc!r}"))
                    self._stop.wait(max(0.0, self._resume_at - time.monotonic()))
        finally:
            for delivery in self._exporter.close(CLOSE_TIMEOUT_S):
                self._handle(delivery)
            self._collect()
            self._spill_due()  # stopping: what the upstream did not ack by now goes to disk

    def _step(self) -> None:
        self._collect()
        self._spill_due()
        pause = self._resume_at - time.monotonic()
        if pause > 0:
            # Backoff: new batches don't bring the upstream back; they wake us only to compact.
            self._compact()
            self._wake.wait(pause)
            return
        self._fill()
        self._collect()
        if self._stop.is_set() or self._resume_at > time.monotonic():
            return
        # Deliveries and notify() set the wake event, so this returns as soon as there is work.
        timeout = self._rate_wait() or (ACTIVE_WAIT_S if self._in_flight else IDLE_WAIT_S)
        deadline = self._behind.deadline() if self._behind is not None else None
        for at in (deadline, self._exporter.wake_at()):  # the hold's next cut; an idle connection to close
            if at is not None:
                timeout = min(timeout, max(0.0, at - time.monotonic()))
        self._wake.wait(timeout)

    def _compact(self) -> None:
        """Offline: merge small spooled batches. Only here, with nothing in flight, in the one thread
        that deletes on ack, can no merged part be acked from an older copy."""
        if self._compactor is None or self._in_flight:
            return
        if self._compactor.run():
            for signal in SIGNALS:
                self._gather.clear(signal)  # listed parts may be gone

    def _spill_due(self) -> None:
        if self._behind is None:
            return
        try:
            self._behind.spill_due()
        except SpoolFault as exc:
            log.error("upstream: cannot spool held batches (%s); they stay in memory", exc)

    def _spill_all(self) -> None:
        """The upstream is not healthy: every held batch goes to the spool, in cut order."""
        if self._behind is None:
            return
        try:
            self._behind.failed()
        except SpoolFault as exc:
            log.error("upstream: cannot spool held batches (%s); they stay in memory", exc)

    def _rate_wait(self) -> float:
        return self._bucket.wait_s() if self._bucket is not None else 0.0

    def _fill(self) -> None:
        """Submit batches, oldest first and coalesced, until each signal's window is full."""
        for signal in SIGNALS:
            window = 1 if self._probing else self._cfg.max_in_flight
            while sum(1 for f in self._in_flight.values() if f.signal == signal) < window:
                if self._rate_wait() > 0:
                    return
                members = self._gather.next(signal, self._taken, window + len(self._in_flight))
                if not members:
                    break
                if not self._submit(signal, members):
                    return

    def _taken(self, spool_id: int) -> bool:
        """In flight, alone or in a coalesced batch, or as a held copy spilled meanwhile."""
        return (spool_id in self._in_flight or spool_id in self._member_of
                or (self._behind is not None and self._behind.flying(spool_id)))

    def _submit(self, signal: Signal, members: list[Outgoing]) -> bool:
        """Send one wire batch made of `members`; False when filling must stop (backoff, stop)."""
        points = sum(m.points for m in members)
        item = members[0]
        if len(members) > 1:
            key = -members[0].spool_id  # stable across retries, so poison strikes add up
            self._groups[key] = [(m.spool_id, m.points) for m in members]
            self._member_of.update((m.spool_id, key) for m in members)
            try:
                item = Outgoing(key, signal, coalesce([m.batch for m in members]), points)
            except Exception as exc:  # a batch that will not merge goes alone
                log.exception("upstream: cannot coalesce %d batches; sending them one by one", len(members))
                self._gather.solo.update(m.spool_id for m in members)
                self._in_flight[key] = _Flight(signal, points)
                self._handle(Delivery(key, "retry", "internal_error", f"coalesce error: {exc!r}", backoff=False))
                return True
        self._in_flight[item.spool_id] = _Flight(signal, points)
        if self._bucket is not None:
            self._bucket.take(points)
        try:
            self._exporter.submit(item)
        except Exception as exc:  # an exporter bug costs a retry, not the thread
            log.exception("upstream: exporter failed on batch %d", item.spool_id)
            failed = Delivery(item.spool_id, "retry", "internal_error", f"exporter error: {exc!r}")
            self._handle(failed)
            self._back_off(failed)
            return False
        self._collect()
        return not (self._resume_at > time.monotonic() or self._stop.is_set())

    def _load(self, spool_id: int, signal: Signal, points: int) -> Outgoing | None:
        from edgecollect.batch import from_ipc

        payload = self._spool.read(spool_id)
        if payload is None:
            return None  # acked meanwhile, evicted, or found damaged (the spool counted it)
        try:
            batch = from_ipc(payload)
        except Exception as exc:  # noqa: BLE001 - any undecodable payload is poison, never a crash
            log.error("upstream: spool batch %d is not readable Arrow (%s); quarantining it", spool_id, exc)
            self._quarantined.inc("unreadable")
            self._spool.quarantine(spool_id, "unreadable_arrow")
            return None
        return Outgoing(spool_id, signal, batch, points)

    def _collect(self) -> None:
        deliveries = self._exporter.poll()
        backoff: Delivery | None = None
        for d in deliveries:
            self._handle(d)
            if d.outcome == "retry" and d.backoff and backoff is None:
                backoff = d
        if backoff is not None:
            self._back_off(backoff)

    def _back_off(self, backoff: Delivery) -> None:
        """One backoff step per burst of failures: a broken stream answers a whole window at once."""
        self._failures += 1
        self._spill_all()
        delay = backoff_delay(self._failures, self._cfg.retry_initial, self._cfg.retry_max, self._rng)
        if backoff.retry_after_s is not None:
            delay = max(delay, min(backoff.retry_after_s, 3600.0))
        self._resume_at = time.monotonic() + delay
        self._probing = True
        self._set_state("backoff" if backoff.reachable else "offline", backoff.detail, backoff.reason)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("upstream: retry in %.2fs (%s)", delay, backoff.reason)

    def _handle(self, d: Delivery, count_retry: bool = True) -> None:
        if d.spool_id in self._groups:
            self._handle_group(d)
            return
        flight = self._in_flight.pop(d.spool_id, None)
        points = flight.points if flight is not None else 0
        if d.outcome != "retry":
            self._gather.solo.discard(d.spool_id)
        if self._behind is not None and d.spool_id >= HELD_BASE:
            d = self._held_verdict(d)
        if d.outcome == "ok":
            if self._behind is not None:
                self._behind.healthy(True)
            self._spool.ack(d.spool_id)
            self._delivered.inc(d.via)
            self._points.inc(d.via, points)
            self._drain.add(points)
            self._failures = 0
            self._probing = False
            modes = self._exporter.modes().values()
            fallback = d.via != self._cfg.protocol or any(mode.fallback for mode in modes)
            self._set_state("fallback" if fallback else "connected", "")
        elif d.outcome == "reject":
            log.warning("upstream %s rejected spool batch %d (%s): %s; quarantined",
                        self._cfg.endpoint, d.spool_id, d.reason, d.detail)
            self._quarantined.inc(d.reason)
            self._spool.quarantine(d.spool_id, f"upstream_{d.reason}")
        else:
            if count_retry:
                self._retries.inc(d.reason)
            if flight is not None:
                self._gather.clear(flight.signal)  # it is older than anything queued: oldest first
            if d.detail:
                with self._lock:
                    self._last_error, self._last_error_at = d.detail, time.time()

    def _handle_group(self, d: Delivery) -> None:
        """A verdict on a coalesced batch is each member's; a rejected one is retried member by member."""
        flight = self._in_flight.pop(d.spool_id, None)
        members = self._groups.pop(d.spool_id)
        if d.outcome == "reject":
            self._spill_all()  # held members get spool ids, so they can be sent alone
            for member, _ in members:
                spilled = self._behind.spool_id_of(member) if self._behind is not None else None
                self._gather.solo.add(member if spilled is None else spilled)
            d = replace(d, outcome="retry", reason="rejected_coalesced", backoff=True)
        if d.outcome == "retry":
            self._retries.inc(d.reason)  # one wire batch, one retry
        for member, points in members:
            self._member_of.pop(member, None)
            if flight is not None:
                self._in_flight[member] = _Flight(flight.signal, points)
            self._handle(replace(d, spool_id=member), count_retry=False)

    def _held_verdict(self, d: Delivery) -> Delivery:
        """A verdict on a held batch, in spool terms: the spool id of its spilled copy, or 0 (none)."""
        assert self._behind is not None
        if d.outcome == "ok":
            return replace(d, spool_id=self._behind.acked(d.spool_id) or 0)
        if d.outcome == "reject" or d.backoff:
            self._spill_all()  # the upstream is not healthy: nothing more is held meanwhile
        spool_id = self._behind.spool_id_of(d.spool_id)
        if spool_id is None:
            self._behind.resend(d.spool_id)  # not spilled (stream rotation, or the disk failed)
            return replace(d, spool_id=0)
        self._behind.forget(d.spool_id)  # from now on it is a spooled batch like any other
        return replace(d, spool_id=spool_id)

    def _set_state(self, state: State, error: str, reason: str = "") -> None:
        with self._lock:
            old, self._state = self._state, state
            if error:
                self._last_error, self._last_error_at = error, time.time()
        if state in ("backoff", "offline"):
            if error != self._logged_error or old not in ("backoff", "offline"):
                # One line per distinct error, not one per retry.
                # Errors only a person can fix (certificates, secrets, credentials) log as errors.
                level = logging.ERROR if reason in _NEEDS_A_PERSON else logging.WARNING
                log.log(level, "upstream %s: %s: %s (backlog %d batches; retrying with backoff)",
                        self._cfg.endpoint, state, error, self._spool.stats().files)
                self._logged_error = error
        elif old != state:
            log.info("upstream %s: %s", self._cfg.endpoint, state)
            self._logged_error = ""

    # -- status -------------------------------------------------------------------------------

    def status(self) -> UpstreamStatus:
        """Upstream state for `edgecollect status`, the STATUS line and the periodic log line."""
        stats = self._spool.stats()
        with self._lock:
            state, error, error_at = self._state, self._last_error, self._last_error_at
        return UpstreamStatus(
            endpoint=self._cfg.endpoint,
            protocol=self._cfg.protocol,
            state=state,
            modes={signal: mode.value for signal, mode in self._exporter.modes().items()},
            last_error=error,
            last_error_at=error_at or None,
            retry_in_s=round(max(0.0, self._resume_at - time.monotonic()), 3),
            backlog=Backlog(stats.files, stats.points, stats.bytes, round(stats.oldest_age_s, 3)),
            in_flight=len(self._in_flight),
            drain_rate_points_per_s=round(self._drain.rate(), 1),
            delivered=Delivered(self._delivered.total(), self._points.total()),
            retries=self._retries.total(),
            quarantined=self._quarantined.total(),
        )
