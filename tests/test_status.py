"""The typed status: its JSON document (keys kept for scripts and benchmarks), and each renderer's
text from a constructed status — the `status` table, the sd_notify STATUS line, the journal summary."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgecollect.statusmodel import AgentStatus, Backlog, PointCounts, StatusFormatError
from edgecollect.statustext import notify_line, render, summary_line, upstream_line
from tests.support.status import sample_opamp, sample_source, sample_status, sample_upstream

# The document's keys as they were before the status was typed: readers outside the package
# (scripts, tests/bench, tests/support) depend on every one of them.
TOP_KEYS = {"version", "pid", "uptime_s", "state_dir", "config", "clock_synced", "series", "sources", "spool",
            "upstream", "counters"}
SOURCE_KEYS = {"kind", "ring_points", "ring_capacity", "ring_logs", "alive"}
SPOOL_KEYS = {"files", "bytes", "points", "oldest_age_s", "max_size"}
UPSTREAM_KEYS = {"endpoint", "protocol", "state", "modes", "last_error", "last_error_at", "retry_in_s", "backlog",
                 "in_flight", "drain_rate_points_per_s", "delivered", "retries", "quarantined"}
OPAMP_KEYS = {"endpoint", "state", "last_error", "last_contact_s_ago", "instance_uid", "accept_remote_config",
              "remote_config"}


def test_json_keeps_every_key_readers_use() -> None:
    doc = json.loads(json.dumps(sample_status(opamp=sample_opamp()).to_json()))
    assert TOP_KEYS | {"opamp", "buffer"} == set(doc)
    assert set(doc["sources"]["host"]) >= SOURCE_KEYS
    assert doc["sources"]["host"]["alive"] is True and doc["sources"]["host"]["state"] == "running"
    assert doc["sources"]["host"]["points"] == {"accepted": 10, "rejected": 0, "dropped": 0}
    assert set(doc["spool"]) == SPOOL_KEYS
    assert set(doc["upstream"]) == UPSTREAM_KEYS
    assert set(doc["upstream"]["backlog"]) == {"batches", "points", "bytes", "oldest_age_s"}
    assert doc["upstream"]["delivered"] == {"batches": 7, "points": 700}
    assert set(doc["opamp"]) == OPAMP_KEYS
    assert doc["opamp"]["remote_config"] == {"status": "applied", "hash": "abababab", "error": ""}
    assert doc["counters"] == {"edgecollect.host.points_accepted{source=host}": {"": 10}}


def test_json_without_upstream_or_opamp() -> None:
    doc = sample_status(upstream=None).to_json()
    assert doc["upstream"] == {"state": "offline", "reason": "no [upstream] configured"}
    assert "opamp" not in doc


@pytest.mark.parametrize("status", [
    sample_status(),
    sample_status(upstream=None, clock_synced=False),
    sample_status(opamp=sample_opamp(accept=False, rc_status="unset"),
                  sources=(sample_source(),
                           sample_source("mqtt.0", "mqtt", running=False, points=PointCounts(5, 2, 1)))),
], ids=["upstream", "offline", "opamp"])
def test_json_reads_back_to_the_same_status(status: AgentStatus) -> None:
    assert AgentStatus.from_json(json.loads(json.dumps(status.to_json()))) == status


def test_a_newer_agents_extra_keys_are_ignored() -> None:
    doc = sample_status().to_json()
    doc["spool"]["new_key"] = 1
    doc["sources"]["host"]["points"]["new_key"] = 1
    doc["something_new"] = {}
    assert AgentStatus.from_json(doc) == sample_status()


def test_an_unreadable_document_is_a_clear_error_naming_its_version() -> None:
    doc = sample_status().to_json()
    del doc["spool"]
    with pytest.raises(StatusFormatError, match=r"version 9\.9\.9.*spool"):
        AgentStatus.from_json(doc)
    doc = sample_status().to_json()
    doc["upstream"]["state"] = "sideways"
    with pytest.raises(StatusFormatError, match="sideways"):
        AgentStatus.from_json(doc)


def test_totals_add_every_source() -> None:
    st = sample_status(sources=(sample_source(points=PointCounts(10, 1, 2), ring=(3, 100), logs=1),
                                sample_source("mqtt.0", "mqtt", points=PointCounts(5, 2, 3), ring=(4, 50))))
    assert st.points == PointCounts(15, 3, 5)
    assert (st.buffer.points, st.buffer.capacity, st.buffer.logs, st.buffer.dropped) == (7, 150, 1, 5)


# -- `edgecollect status` ------------------------------------------------------------------------

def test_table_shows_sources_spool_upstream_opamp_and_counters() -> None:
    st = sample_status(
        sources=(sample_source(), sample_source("modbus.meter", "modbus", running=False, points=PointCounts(8, 3, 1))),
        upstream=sample_upstream(state="backoff", last_error="UNAVAILABLE: connection refused", retry_in_s=3.5,
                                 backlog=Backlog(4, 400, 2048, 12.0)),
        opamp=sample_opamp(), counters={"edgecollect.spool.batches{}": {"metrics": 3, "logs": 0}})
    lines = render(st).splitlines()
    assert lines[0] == "edgecollect 9.9.9  pid 4242  up 61.5s  clock synced  series 33"
    assert lines[1] == "config    /etc/edgecollect/edgecollect.toml"
    row = next(line for line in lines if line.startswith("modbus.meter"))
    assert row.split() == ["modbus.meter", "modbus", "4/100", "0", "8", "3", "1", "stopped"]
    assert next(line for line in lines if line.startswith("host ")).split()[-1] == "running"
    assert "SPOOL     2 files, 8.0 KiB of 256.0 MiB, 150 points, oldest 42.0s" in lines
    assert "UPSTREAM  backoff gw:4317 (otap; metrics via otap, logs via otap)" in lines
    assert any("backlog 4 batches, 400 points, 2.0 KiB" in line for line in lines)
    assert any("delivered 7 batches, 700 points; retries 2; quarantined 0; next try in 3.5s" in line
               for line in lines)
    assert "          last error: UNAVAILABLE: connection refused" in lines
    assert ("OPAMP     connected https://fleet:4320/v1/opamp, last contact 1.5s ago, remote config applied"
            in lines)
    assert lines[-2:] == ["COUNTERS", "  edgecollect.spool.batches{}: metrics=3"]  # zeros left out


def test_table_without_upstream_and_with_a_report_only_opamp() -> None:
    text = render(sample_status(upstream=None, clock_synced=False,
                                opamp=sample_opamp(accept=False, state="unreachable", last_error="refused")))
    assert "clock NOT SYNCED" in text.splitlines()[0]
    assert "UPSTREAM  offline (no [upstream] configured: everything stays in the spool)" in text
    assert ("OPAMP     unreachable https://fleet:4320/v1/opamp, last contact 1.5s ago, report only, "
            "error: refused") in text


# -- sd_notify STATUS= ---------------------------------------------------------------------------

def test_notify_line_leads_with_backlog_and_upstream() -> None:
    assert notify_line(sample_status()) == "backlog 2 batches / 8192 bytes; upstream connected"
    assert notify_line(sample_status(upstream=None)) == (
        "backlog 2 batches / 8192 bytes; upstream offline (none configured)")


def test_notify_line_says_what_is_wrong() -> None:
    st = sample_status(upstream=sample_upstream(state="offline", last_error="cannot connect to gw:4317"),
                       sources=(sample_source(), sample_source("serial.ttyUSB0", "serial", running=False)),
                       clock_synced=False)
    assert notify_line(st) == ("backlog 2 batches / 8192 bytes; upstream offline (cannot connect to gw:4317); "
                               "sources stopped: serial.ttyUSB0; clock not synced")
    # The last error of a recovered upstream is history, not what is wrong now.
    recovered = replace(st, upstream=sample_upstream(state="connected", last_error="cannot connect"))
    assert "cannot connect" not in notify_line(recovered)


# -- the journal summary ---------------------------------------------------------------------------

def test_summary_line_totals_points_and_adds_the_upstream() -> None:
    st = sample_status(sources=(sample_source(points=PointCounts(10, 1, 2)),
                                sample_source("mqtt.0", "mqtt", points=PointCounts(5, 2, 3))),
                       upstream=sample_upstream(state="fallback", protocol="otap",
                                                modes={"metrics": "otlp_grpc (fallback)"}))
    assert summary_line(st) == (
        "points accepted=15 dropped=5 rejected=3 series=33 spool files=2 bytes=8192 oldest=42.0s; "
        "upstream gw:4317 otap: fallback; backlog 0 batches, 0 points, 0 B; drain 12.5 points/s")


def test_summary_line_without_upstream() -> None:
    assert summary_line(sample_status(upstream=None)).endswith(
        "spool files=2 bytes=8192 oldest=42.0s upstream=offline (none configured)")


def test_upstream_line_names_the_last_error_only_while_failing() -> None:
    down = sample_upstream(state="offline", last_error="cannot connect", backlog=Backlog(3, 300, 4096, 1.0))
    line = upstream_line(down)
    assert line.startswith("upstream gw:4317 otap: offline; backlog 3 batches, 300 points, 4096 B")
    assert line.endswith("last error: cannot connect")
    assert "last error" not in upstream_line(replace(down, state="connected"))
