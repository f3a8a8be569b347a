"""Status for people: the `edgecollect status` table, the sd_notify STATUS line, the journal summary.

Pure functions of a `statusmodel.AgentStatus`: no I/O, no colours (the table often ends up in a
journal or a ticket). The STATUS line is what `systemctl status` shows under the unit, so it leads
with what an operator looks for first (backlog, upstream) and stays well under sdnotify's limit.
"""

from __future__ import annotations

from edgecollect.statusmodel import AgentStatus, OpampStatus, UpstreamStatus


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def upstream_line(up: UpstreamStatus) -> str:
    """The upstream in one line: where, how, the backlog and how fast it drains (the last error while failing)."""
    b = up.backlog
    line = (f"upstream {up.endpoint} {up.protocol}: {up.state}; "
            f"backlog {b.batches} batches, {b.points} points, {b.bytes} B; "
            f"drain {up.drain_rate_points_per_s} points/s")
    if up.last_error and up.failing:
        line += f"; last error: {up.last_error}"
    return line


def summary_line(st: AgentStatus) -> str:
    """The periodic journal line (`[agent] summary_interval`)."""
    points, spool = st.points, st.spool
    line = (f"points accepted={points.accepted} dropped={points.dropped} rejected={points.rejected} "
            f"series={st.series} spool files={spool.files} bytes={spool.bytes} oldest={spool.oldest_age_s}s")
    if st.upstream is None:
        return line + " upstream=offline (none configured)"
    return line + "; " + upstream_line(st.upstream)


def notify_line(st: AgentStatus) -> str:
    """sd_notify STATUS=: the backlog, the upstream (and why it fails), and anything that is wrong."""
    text = f"backlog {st.spool.files} batches / {st.spool.bytes} bytes; upstream {st.upstream_state}"
    if st.upstream is None:
        text += " (none configured)"
    elif st.upstream.failing and st.upstream.last_error:
        text += f" ({st.upstream.last_error})"
    if st.stopped_sources:
        text += "; sources stopped: " + ", ".join(st.stopped_sources)
    if not st.clock_synced:
        text += "; clock not synced"
    return text


def render(st: AgentStatus) -> str:
    """The `edgecollect status` table."""
    width = max([14, *(len(s.name) for s in st.sources)]) + 2
    lines = [
        f"edgecollect {st.version}  pid {st.pid}  up {st.uptime_s}s  "
        f"clock {'synced' if st.clock_synced else 'NOT SYNCED'}  series {st.series}",
        f"config    {st.config}",
        f"state     {st.state_dir}",
        "",
        f"{'SOURCE':<{width}}{'KIND':<8}{'RING':>16}{'LOGS':>8}{'ACCEPTED':>12}{'REJECTED':>10}{'DROPPED':>10}  STATE",
    ]
    for s in st.sources:
        ring = f"{s.ring_points}/{s.ring_capacity}"
        lines.append(f"{s.name:<{width}}{s.kind:<8}{ring:>16}{s.ring_logs:>8}{s.points.accepted:>12}"
                     f"{s.points.rejected:>10}{s.points.dropped:>10}  {s.state}")
    sp = st.spool
    lines += [
        "",
        f"SPOOL     {sp.files} files, {human_bytes(sp.bytes)} of {human_bytes(sp.max_size)}, "
        f"{sp.points} points, oldest {sp.oldest_age_s}s",
        _upstream_block(st.upstream),
    ]
    if st.opamp is not None:
        lines.append(_opamp_line(st.opamp))
    lines += ["", "COUNTERS"]
    for name, values in sorted(st.counters.items()):
        shown = {k: v for k, v in values.items() if v}
        if shown:
            text = ", ".join(f"{k or 'total'}={v}" for k, v in sorted(shown.items()))
            lines.append(f"  {name}: {text}")
    return "\n".join(lines)


def _upstream_block(up: UpstreamStatus | None) -> str:
    if up is None:
        return "UPSTREAM  offline (no [upstream] configured: everything stays in the spool)"
    modes = ", ".join(f"{signal} via {mode}" for signal, mode in up.modes.items())
    lines = [f"UPSTREAM  {up.state} {up.endpoint} ({up.protocol}" + (f"; {modes})" if modes else ")"),
             f"          backlog {up.backlog.batches} batches, {up.backlog.points} points, "
             f"{human_bytes(up.backlog.bytes)}, oldest {up.backlog.oldest_age_s}s; in flight {up.in_flight}; "
             f"drain {up.drain_rate_points_per_s} points/s",
             f"          delivered {up.delivered.batches} batches, {up.delivered.points} points; "
             f"retries {up.retries}; quarantined {up.quarantined}"]
    if up.retry_in_s > 0:
        lines[-1] += f"; next try in {up.retry_in_s}s"
    if up.last_error:
        lines.append(f"          last error: {up.last_error}")
    return "\n".join(lines)


def _opamp_line(op: OpampStatus) -> str:
    rc = op.remote_config
    remote = f"remote config {rc.status}" + (f" ({rc.error})" if rc.error else "")
    if not op.accept_remote_config:
        remote = "report only"
    seen = op.last_contact_s_ago
    return (f"OPAMP     {op.state} {op.endpoint}"
            + (f", last contact {seen}s ago" if seen is not None else "")
            + f", {remote}" + (f", error: {op.last_error}" if op.last_error else ""))
