"""Constructed `AgentStatus` values for tests of what reads them (renderers, OpAMP health).

Every field has a plain default; a test names only what it asserts on:

    st = sample_status(upstream=sample_upstream(state="backoff", last_error="UNAVAILABLE"))
"""

from __future__ import annotations

from collections.abc import Mapping

from edgecollect.statusmodel import (
    AgentStatus,
    Backlog,
    Delivered,
    OpampStatus,
    PointCounts,
    RemoteConfigStatus,
    SourceStatus,
    SpoolStatus,
    UpstreamState,
    UpstreamStatus,
)

_DEFAULT = object()
TEN_ACCEPTED = PointCounts(10, 0, 0)
EMPTY_BACKLOG = Backlog(0, 0, 0, 0.0)
SPOOL = SpoolStatus(files=2, bytes=8192, points=150, oldest_age_s=42.0, max_size=256 * 1024**2)
COUNTERS = {"edgecollect.host.points_accepted{source=host}": {"": 10}}


def sample_source(name: str = "host", kind: str = "host", *, running: bool = True,
                  points: PointCounts = TEN_ACCEPTED, ring: tuple[int, int] = (4, 100),
                  logs: int = 0) -> SourceStatus:
    return SourceStatus(name=name, kind=kind, running=running, ring_points=ring[0], ring_capacity=ring[1],
                        ring_logs=logs, points=points)


def sample_upstream(*, state: UpstreamState = "connected", last_error: str = "", endpoint: str = "gw:4317",
                    protocol: str = "otap", modes: Mapping[str, str] | None = None,
                    backlog: Backlog = EMPTY_BACKLOG, retry_in_s: float = 0.0) -> UpstreamStatus:
    return UpstreamStatus(
        endpoint=endpoint, protocol=protocol, state=state,
        modes=dict(modes) if modes is not None else {"metrics": protocol, "logs": protocol},
        last_error=last_error, last_error_at=1_700_000_000.0 if last_error else None, retry_in_s=retry_in_s,
        backlog=backlog, in_flight=0, drain_rate_points_per_s=12.5, delivered=Delivered(7, 700), retries=2,
        quarantined=0,
    )


def sample_opamp(*, state: str = "connected", accept: bool = True, rc_status: str = "applied",
                 rc_error: str = "", last_error: str = "") -> OpampStatus:
    return OpampStatus(endpoint="https://fleet:4320/v1/opamp", state=state, last_error=last_error,
                       last_contact_s_ago=1.5, instance_uid="01" * 16, accept_remote_config=accept,
                       remote_config=RemoteConfigStatus(status=rc_status, hash="ab" * 4, error=rc_error))


def sample_status(*, upstream: UpstreamStatus | object | None = _DEFAULT,
                  sources: tuple[SourceStatus, ...] = (sample_source(),),
                  spool: SpoolStatus = SPOOL,
                  clock_synced: bool = True, opamp: OpampStatus | None = None,
                  counters: Mapping[str, Mapping[str, int]] | None = None) -> AgentStatus:
    """A running agent's status; `upstream=None` is an agent without [upstream]."""
    up = sample_upstream() if upstream is _DEFAULT else upstream
    assert up is None or isinstance(up, UpstreamStatus)
    return AgentStatus(
        version="9.9.9", pid=4242, uptime_s=61.5, state_dir="/var/lib/edgecollect",
        config="/etc/edgecollect/edgecollect.toml", clock_synced=clock_synced, series=33, sources=sources,
        spool=spool, upstream=up,
        counters=dict(counters if counters is not None else COUNTERS),
        opamp=opamp,
    )
