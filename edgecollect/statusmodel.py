"""The agent's status as typed values, and its JSON document.

One `AgentStatus` is built per request by `runtime.Agent.status()` from parts its owners build: the
forwarder its `UpstreamStatus`, the OpAMP client its `OpampStatus`. Everything that shows status
reads these values — `edgecollect status` (statustext.render), the sd_notify STATUS line and the
journal summary (statustext), OpAMP's health report — never a dict by key or by substring.

Wire format: `to_json()` is the status socket's document (`edgecollect status --json`); scripts,
tests and benchmarks read its keys, so keys are added, never renamed or removed:

    version, pid, uptime_s, state_dir, config, clock_synced, series,
    sources: {NAME: {kind, alive, state, ring_points, ring_capacity, ring_logs,
                     points: {accepted, rejected, dropped}}},
    buffer: {points, capacity, logs, dropped},
    spool: {files, bytes, points, oldest_age_s, max_size},
    upstream: {state, reason} when no [upstream] is configured, else {endpoint, protocol, state,
               modes, last_error, last_error_at, retry_in_s, backlog: {batches, points, bytes,
               oldest_age_s}, in_flight, drain_rate_points_per_s, delivered: {batches, points},
               retries, quarantined},
    counters: {"edgecollect.<component>.<noun>{attrs}": {label: count}},
    opamp (only with [opamp]): {endpoint, state, last_error, last_contact_s_ago, instance_uid,
               accept_remote_config, remote_config: {status, hash, error}}

`AgentStatus.from_json()` reads the document back (the `status` command renders what the running
agent sent); a document it cannot read raises `StatusFormatError`, never a KeyError.

Must never: import anything above the foundation layer (exporters and opamp build their parts here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, Literal, TypeVar, cast

UpstreamState = Literal["idle", "connected", "fallback", "backoff", "offline"]
SourceState = Literal["running", "stopped"]
NO_UPSTREAM_REASON = "no [upstream] configured"
_T = TypeVar("_T")


class StatusFormatError(ValueError):
    """A status document that is not the shape this version writes (e.g. from another version)."""


@dataclass(frozen=True, slots=True)
class PointCounts:
    """What happened to one source's points: buffered, refused by a guard, dropped by its full ring."""

    accepted: int = 0
    rejected: int = 0
    dropped: int = 0

    def __add__(self, other: PointCounts) -> PointCounts:
        return PointCounts(self.accepted + other.accepted, self.rejected + other.rejected,
                           self.dropped + other.dropped)


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str  # the source's identity, as in its counters' `source` attribute
    kind: str  # host | mqtt | serial | modbus | sysfs | self
    running: bool  # its thread is alive
    ring_points: int
    ring_capacity: int
    ring_logs: int
    points: PointCounts = PointCounts()

    @property
    def state(self) -> SourceState:
        return "running" if self.running else "stopped"


@dataclass(frozen=True, slots=True)
class BufferStatus:
    """All rings together."""

    points: int
    capacity: int
    logs: int
    dropped: int


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    files: int
    bytes: int
    points: int
    oldest_age_s: float
    max_size: int


@dataclass(frozen=True, slots=True)
class Backlog:
    """The spool as the forwarder sees it: what is still to be sent."""

    batches: int
    points: int
    bytes: int
    oldest_age_s: float


@dataclass(frozen=True, slots=True)
class Delivered:
    batches: int
    points: int


@dataclass(frozen=True, slots=True)
class UpstreamStatus:
    """The forwarder's view of the configured upstream (exporters/ builds it)."""

    endpoint: str
    protocol: str  # otap | otlp_grpc | otlp_http, as configured
    state: UpstreamState
    modes: Mapping[str, str]  # signal -> the protocol carrying it now (a fallback says so)
    last_error: str
    last_error_at: float | None  # Unix seconds
    retry_in_s: float
    backlog: Backlog
    in_flight: int
    drain_rate_points_per_s: float
    delivered: Delivered
    retries: int
    quarantined: int

    @property
    def failing(self) -> bool:
        """Nothing is getting through: it retries with backoff (reachable or not)."""
        return self.state in ("backoff", "offline")


@dataclass(frozen=True, slots=True)
class RemoteConfigStatus:
    status: str  # unset | applying | applied | failed
    hash: str  # hex
    error: str


@dataclass(frozen=True, slots=True)
class OpampStatus:
    endpoint: str
    state: str  # starting | connected | unreachable | off
    last_error: str
    last_contact_s_ago: float | None
    instance_uid: str  # hex
    accept_remote_config: bool
    remote_config: RemoteConfigStatus


@dataclass(frozen=True, slots=True)
class AgentStatus:
    version: str
    pid: int
    uptime_s: float
    state_dir: str
    config: str  # the file the running config came from (an applied remote config's own file)
    clock_synced: bool  # samples are stamped with a synchronised wall clock
    series: int  # interned series
    sources: tuple[SourceStatus, ...]
    spool: SpoolStatus
    upstream: UpstreamStatus | None  # None: no [upstream] configured, everything stays in the spool
    counters: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # telemetry.snapshot()
    opamp: OpampStatus | None = None  # None: no [opamp]

    @property
    def upstream_state(self) -> UpstreamState:
        return "offline" if self.upstream is None else self.upstream.state

    @property
    def points(self) -> PointCounts:
        """Every source's points together."""
        total = PointCounts()
        for src in self.sources:
            total += src.points
        return total

    @property
    def buffer(self) -> BufferStatus:
        return BufferStatus(
            points=sum(s.ring_points for s in self.sources), capacity=sum(s.ring_capacity for s in self.sources),
            logs=sum(s.ring_logs for s in self.sources), dropped=self.points.dropped,
        )

    @property
    def stopped_sources(self) -> tuple[str, ...]:
        return tuple(sorted(s.name for s in self.sources if not s.running))

    # -- the status socket's document -------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "version": self.version,
            "pid": self.pid,
            "uptime_s": self.uptime_s,
            "state_dir": self.state_dir,
            "config": self.config,
            "clock_synced": self.clock_synced,
            "series": self.series,
            "sources": {s.name: _source_json(s) for s in self.sources},
            "buffer": _plain(self.buffer),
            "spool": _plain(self.spool),
            "upstream": ({"state": "offline", "reason": NO_UPSTREAM_REASON} if self.upstream is None
                         else _plain(self.upstream)),
            "counters": {name: dict(values) for name, values in self.counters.items()},
        }
        if self.opamp is not None:
            doc["opamp"] = _plain(self.opamp)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AgentStatus:
        """The document `to_json()` wrote, read back; StatusFormatError when it is not one."""
        try:
            return _agent_from_json(doc)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            version = doc.get("version", "?") if isinstance(doc, Mapping) else "?"
            raise StatusFormatError(
                f"the agent's status document (version {version}) is not readable: {type(exc).__name__}: {exc}"
            ) from exc


def _plain(value: object) -> dict[str, Any]:
    """A frozen value as JSON fields, nested values as objects (field order kept)."""
    out: dict[str, Any] = {}
    for f in fields(cast(Any, value)):
        item = getattr(value, f.name)
        if is_dataclass(item):
            item = _plain(item)
        elif isinstance(item, Mapping):
            item = dict(item)
        out[f.name] = item
    return out


def _take(cls: type[_T], obj: Mapping[str, Any]) -> _T:
    """A flat value from its JSON object; keys a newer agent added are ignored."""
    return cls(**{f.name: obj[f.name] for f in fields(cast(Any, cls))})


def _source_json(s: SourceStatus) -> dict[str, Any]:
    return {"kind": s.kind, "alive": s.running, "state": s.state, "ring_points": s.ring_points,
            "ring_capacity": s.ring_capacity, "ring_logs": s.ring_logs, "points": _plain(s.points)}


def _agent_from_json(doc: Mapping[str, Any]) -> AgentStatus:
    up = doc["upstream"]
    upstream = None if "endpoint" not in up else UpstreamStatus(  # the offline document has no endpoint
        endpoint=str(up["endpoint"]), protocol=str(up["protocol"]), state=_upstream_state(up["state"]),
        modes={str(k): str(v) for k, v in up["modes"].items()}, last_error=str(up["last_error"]),
        last_error_at=_opt_float(up["last_error_at"]), retry_in_s=float(up["retry_in_s"]),
        backlog=_take(Backlog, up["backlog"]), in_flight=int(up["in_flight"]),
        drain_rate_points_per_s=float(up["drain_rate_points_per_s"]), delivered=_take(Delivered, up["delivered"]),
        retries=int(up["retries"]), quarantined=int(up["quarantined"]),
    )
    op = doc.get("opamp")
    opamp = None if op is None else OpampStatus(
        endpoint=str(op["endpoint"]), state=str(op["state"]), last_error=str(op["last_error"]),
        last_contact_s_ago=_opt_float(op["last_contact_s_ago"]), instance_uid=str(op["instance_uid"]),
        accept_remote_config=bool(op["accept_remote_config"]),
        remote_config=_take(RemoteConfigStatus, op["remote_config"]),
    )
    return AgentStatus(
        version=str(doc["version"]), pid=int(doc["pid"]), uptime_s=float(doc["uptime_s"]),
        state_dir=str(doc["state_dir"]), config=str(doc["config"]), clock_synced=bool(doc["clock_synced"]),
        series=int(doc["series"]),
        sources=tuple(
            SourceStatus(name=str(name), kind=str(s["kind"]), running=bool(s["alive"]),
                         ring_points=int(s["ring_points"]), ring_capacity=int(s["ring_capacity"]),
                         ring_logs=int(s["ring_logs"]), points=_take(PointCounts, s["points"]))
            for name, s in doc["sources"].items()
        ),
        spool=_take(SpoolStatus, doc["spool"]), upstream=upstream,
        counters={str(name): {str(k): int(v) for k, v in values.items()} for name, values in doc["counters"].items()},
        opamp=opamp,
    )


def _opt_float(value: object) -> float | None:
    return None if value is None else float(cast(float, value))


def _upstream_state(value: object) -> UpstreamState:
    if value not in ("idle", "connected", "fallback", "backoff", "offline"):
        raise ValueError(f"upstream state {value!r}")
    return value
