"""edgecollect agents against the real OpAMP server (opamp-go's server package, tests/interop/opamp).

Each agent is a real `edgecollect run` process; the server records every AgentToServer it gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgecollect.statusmodel import AgentStatus, OpampStatus
from tests.exporters.test_tls import Pki
from tests.interop.opamp_server import Message, OpampServer, effective_toml, remote_status, uid
from tests.opamp.agents import agent_config, opamp_agent, state_env
from tests.support.agent import REPO, AgentProcess
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

APPLIED = "RemoteConfigStatuses_APPLIED"
FAILED = "RemoteConfigStatuses_FAILED"
ACCEPTS_REMOTE_CONFIG = 0x2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OpampServer]:
    with OpampServer(tmp_path / "opamp.jsonl") as srv:
        yield srv


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def _start(agents: list[AgentProcess], workdir: Path, text: str) -> AgentProcess:
    agent = opamp_agent(workdir, text).start()
    agents.append(agent)
    return agent


def _statuses(messages: list[Message], status: str) -> list[dict[str, Any]]:
    return [st for m in messages if (st := remote_status(m)) and st.get("status") == status]


def _points(status: dict[str, Any]) -> int:
    return AgentStatus.from_json(status).points.accepted


def _opamp(status: dict[str, Any]) -> OpampStatus:
    op = AgentStatus.from_json(status).opamp
    assert op is not None, "no opamp part in the status of an agent with [opamp]"
    return op


def test_reports_identity_health_and_redacted_config_then_applies_a_good_config(
        server: OpampServer, agents: list[AgentProcess], tmp_path: Path) -> None:
    agent = _start(agents, tmp_path / "a", agent_config(server.endpoint))
    first = server.wait_for(lambda ms: [m for m in ms if "agent_description" in m], "a full first report")[0]
    ident = {kv["key"]: kv["value"]["string_value"] for kv in first["agent_description"]["identifying_attributes"]}
    assert ident["service.name"] == "edgecollect"
    assert int(first["capabilities"]) & ACCEPTS_REMOTE_CONFIG
    assert "backlog" in first["health"]["status"]
    running = effective_toml(first)
    assert running is not None and 'Authorization = "<redacted>"' in running
    assert b"opamp-literal-token" not in server.out.read_bytes()  # the literal never left the box

    remote = agent_config(server.endpoint, extra='[agent]\nsummary_interval = "7m"\n')
    server.serve_config(remote)
    server.wait_for(lambda ms: _statuses(ms, APPLIED), "APPLIED")
    st = agent.wait_status(lambda s: _opamp(s).remote_config.status == "applied", "applied")
    assert st["config"].endswith("opamp/remote.toml")
    env = {k: v for k, v in {**os.environ, **state_env(agent.config.parent)}.items() if v is not None}
    shown = subprocess.run([sys.executable, "-m", "edgecollect", "status", "-c", str(agent.config)], cwd=REPO,
                           env=env, capture_output=True, text=True, check=False)
    assert f"OPAMP     connected {server.endpoint}" in shown.stdout, shown.stdout + shown.stderr
    assert "remote config applied" in shown.stdout
    assert any((t := effective_toml(m)) and 'summary_interval = "7m"' in t for m in server.messages())

    # kill -9 and start again: the agent comes back on the remote config, reports the same hash,
    # and the server has no reason to send it again.
    applied_hash = _statuses(server.messages(), APPLIED)[-1]["last_remote_config_hash"]
    agent.kill9()
    before = len(server.messages())
    agent.start()
    st = agent.wait_status(lambda s: s["config"].endswith("opamp/remote.toml"), "the remote config after restart")
    server.wait_for(lambda ms: [m for m in ms[before:] if "agent_description" in m
                                and (remote_status(m) or {}).get("last_remote_config_hash") == applied_hash],
                    "the restarted agent reporting the applied hash")
    assert agent.log.read_text().count("applying a remote config") == 1


def test_invalid_config_is_refused_with_its_line_and_not_applied(
        server: OpampServer, agents: list[AgentProcess], tmp_path: Path) -> None:
    agent = _start(agents, tmp_path / "a", agent_config(server.endpoint))
    server.wait_for(lambda ms: ms, "a first report")
    server.serve_config('[sources.host]\ninterval = "1s"\n\n[buffer]\nmax_points = "lots"\n')
    failed = server.wait_for(lambda ms: _statuses(ms, FAILED), "FAILED")[0]
    assert failed["error_message"].startswith("edgecollect.toml:5: buffer.max_points: expected an integer")
    st = agent.wait_status(lambda s: _opamp(s).remote_config.status == "failed", "failed")
    assert st["config"] == str(agent.config)
    assert not (agent.state / "opamp" / "remote.toml").exists()
    assert not AgentStatus.from_json(st).stopped_sources


def test_remote_config_that_moves_the_state_dir_is_refused_and_nothing_changes(
        server: OpampServer, agents: list[AgentProcess], tmp_path: Path) -> None:
    # Valid TOML and valid keys, but the state_dir is locked for the life of the process (and holds
    # the instance uid and the applied config): a move is refused, never half-applied. A config that
    # passes this and still fails to start is rolled back by the supervisor
    # (tests/core/test_supervisor.py::test_a_config_that_fails_to_start_is_rolled_back_and_reported).
    agent = _start(agents, tmp_path / "a", agent_config(server.endpoint))
    server.wait_for(lambda ms: ms, "a first report")
    server.serve_config(agent_config(server.endpoint, extra='[agent]\nstate_dir = "/proc/edgecollect-cannot"\n'))
    failed = server.wait_for(lambda ms: _statuses(ms, FAILED), "FAILED")[0]
    assert "cannot move the state_dir" in failed["error_message"]
    assert "/proc/edgecollect-cannot" in failed["error_message"]
    st = agent.wait_status(lambda s: _opamp(s).remote_config.status == "failed", "failed")
    assert st["config"] == str(agent.config)
    assert not (agent.state / "opamp" / "remote.toml").exists()
    assert not (agent.state / "opamp" / "remote.toml.new").exists()
    points = _points(st)
    agent.wait_status(lambda s: _points(s) > points, "points still collected after the refusal")


def test_report_only_agent_does_not_take_a_config(
        server: OpampServer, agents: list[AgentProcess], tmp_path: Path) -> None:
    agent = _start(agents, tmp_path / "a", agent_config(server.endpoint, accept=False))
    first = server.wait_for(lambda ms: ms, "a first report")[0]
    assert not int(first.get("capabilities", "0")) & ACCEPTS_REMOTE_CONFIG
    server.serve_config(agent_config(server.endpoint, extra='[agent]\nsummary_interval = "7m"\n'))
    seen = len(server.messages())
    server.wait_for(lambda ms: len(ms) >= seen + 4, "four more heartbeats")
    st = agent.status()
    assert st is not None and st["config"] == str(agent.config)
    assert _opamp(st).remote_config.status == "unset"
    assert not _statuses(server.messages(), APPLIED) and not _statuses(server.messages(), FAILED)


def test_server_down_agent_keeps_collecting_and_reconnects(agents: list[AgentProcess], tmp_path: Path) -> None:
    server = OpampServer(tmp_path / "before.jsonl").start()
    try:
        agent = _start(agents, tmp_path / "a", agent_config(server.endpoint))
        agent.wait_status(lambda s: _opamp(s).state == "connected", "connected")
    finally:
        server.stop()
    st = agent.wait_status(lambda s: _opamp(s).state == "unreachable", "unreachable")
    assert "127.0.0.1" in _opamp(st).last_error
    points = _points(st)
    agent.wait_status(lambda s: _points(s) > points + 2, "collection going on with the server down")
    with OpampServer(tmp_path / "after.jsonl", port=server.port) as again:
        # The server lost its state: the agent sends everything again on its first message.
        again.wait_for(lambda ms: [m for m in ms if "agent_description" in m and "effective_config" in m],
                       "a full report after reconnecting")
        agent.wait_status(lambda s: _opamp(s).state == "connected", "connected again")


def test_twenty_agents_at_once(server: OpampServer, agents: list[AgentProcess], tmp_path: Path) -> None:
    n = 20
    for i in range(n):
        _start(agents, tmp_path / f"agent{i:02}", agent_config(server.endpoint, heartbeat="2s"))

    def described(ms: list[Message]) -> set[bytes]:
        return {uid(m) for m in ms if "agent_description" in m}

    server.wait_for(lambda ms: len(described(ms)) == n, f"{n} agents described", timeout=300)
    server.serve_config(agent_config(server.endpoint, heartbeat="2s", extra='[agent]\nsummary_interval = "7m"\n'))

    def applied(ms: list[Message]) -> set[bytes]:
        return {uid(m) for m in ms if (remote_status(m) or {}).get("status") == APPLIED}

    assert server.wait_for(lambda ms: len(applied(ms)) == n, f"{n} agents APPLIED", timeout=300)
    uids = {(a.state / "opamp" / "instance_uid").read_bytes() for a in agents}
    assert uids == applied(server.messages())


def test_health_change_is_reported_without_waiting_for_the_heartbeat(
        server: OpampServer, agents: list[AgentProcess], tmp_path: Path) -> None:
    dead = free_port()  # nothing listens: the upstream goes from idle to backoff/offline
    upstream = (f'[upstream]\nendpoint = "127.0.0.1:{dead}"\ntls = {{ insecure = true }}\n'
                'retry_initial = "100ms"\nretry_max = "1s"\n\n')
    _start(agents, tmp_path / "a", agent_config(server.endpoint, heartbeat="1d", extra=upstream))

    def upstream_down(ms: list[Message]) -> list[Message]:
        return [m for m in ms if m.get("health", {}).get("component_health_map", {}).get("upstream", {})
                .get("status") in ("backoff", "offline")]

    # With a one-day heartbeat, only the change itself can have sent this report.
    down = server.wait_for(upstream_down, "a health report with the upstream down")[0]
    assert "upstream" in down["health"]["status"] and "backlog" in down["health"]["status"]


def test_https_with_private_ca_and_client_certificate(agents: list[AgentProcess], pki: Pki, tmp_path: Path) -> None:
    with OpampServer(tmp_path / "tls.jsonl", tls=(pki.server_cert, pki.server_key), client_ca=pki.ca) as server:
        mtls = (f'tls = {{ ca_file = "{pki.ca}", cert_file = "{pki.client_cert}", '
                f'key_file = "{pki.client_key}" }}')
        good = _start(agents, tmp_path / "good", agent_config(server.endpoint, tls=mtls))
        wrong_ca = _start(agents, tmp_path / "wrong", agent_config(
            server.endpoint, tls=f'tls = {{ ca_file = "{pki.other_ca}", cert_file = "{pki.client_cert}", '
                                 f'key_file = "{pki.client_key}" }}'))
        server.wait_for(lambda ms: [m for m in ms if "agent_description" in m], "a report over mTLS")
        good.wait_status(lambda s: _opamp(s).state == "connected", "connected over HTTPS")
        st = wrong_ca.wait_status(lambda s: _opamp(s).state == "unreachable", "refusing an unknown server")
        assert "CERTIFICATE_VERIFY_FAILED" in _opamp(st).last_error
        assert len({uid(m) for m in server.messages()}) == 1
