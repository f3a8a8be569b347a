"""The status as the agent builds it (runtime.Agent.status) and as `edgecollect status` shows it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from edgecollect import cli
from edgecollect.config import loads
from edgecollect.model import Point, Series
from edgecollect.runtime import Agent
from edgecollect.status import SOCKET_NAME, StatusServer
from edgecollect.statusmodel import AgentStatus, PointCounts
from edgecollect.statustext import render
from tests.support.status import sample_opamp, sample_status


def test_each_source_counts_its_own_points(tmp_path: Path) -> None:
    cfg = loads(f"[agent]\nstate_dir = '{tmp_path}'\n[sources.host]\nenabled = false\n[buffer]\nmax_points = 3\n")
    agent = Agent(cfg)
    ctx = agent.sources[0].ctx  # self-telemetry's context: any ring will do
    series = Series("sensor.temperature", "Cel", "gauge")
    assert ctx.emit([Point(series, float(i)) for i in range(5)]) == 5  # a ring of 3: 2 dropped
    ctx.emit([Point(series, math.nan), Point(series, math.inf)])  # rejected: not finite
    st = agent.status()
    (src,) = st.sources
    assert (src.name, src.kind, src.running) == (ctx.name, ctx.kind, False)  # not started
    assert src.points == PointCounts(accepted=5, rejected=2, dropped=2)
    assert (src.ring_points, src.ring_capacity) == (3, 3)
    assert st.upstream is None and st.upstream_state == "offline" and st.opamp is None
    assert st.state_dir == str(tmp_path) and st.spool.files == 0
    assert AgentStatus.from_json(json.loads(json.dumps(st.to_json()))) == st


def test_the_forwarder_gives_the_upstream_part(tmp_path: Path) -> None:
    cfg = loads(f"[agent]\nstate_dir = '{tmp_path}'\n[sources.host]\nenabled = false\n"
                "[upstream]\nendpoint = '127.0.0.1:9'\nprotocol = 'otlp_http'\ntls = { insecure = true }\n")
    agent = Agent(cfg)
    opamp = sample_opamp()
    st = agent.status(opamp=opamp)
    assert st.upstream is not None
    assert (st.upstream.endpoint, st.upstream.protocol, st.upstream.state) == ("127.0.0.1:9", "otlp_http", "idle")
    assert st.upstream.backlog.batches == 0 and st.upstream.delivered.points == 0
    assert st.opamp == opamp
    assert AgentStatus.from_json(json.loads(json.dumps(st.to_json()))) == st


class _Document:
    """A status server's snapshot that is not this version's document."""

    def to_json(self) -> dict[str, Any]:
        return {"version": "0.0.1", "pid": 1}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(f"[agent]\nstate_dir = '{tmp_path}'\n")
    return path


def test_status_command_renders_what_the_socket_sends(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    st = sample_status(opamp=sample_opamp())
    server = StatusServer(config.parent / SOCKET_NAME, lambda: st)
    server.start()
    try:
        assert cli.main(["status", "-c", str(config)]) == cli.EXIT_OK
        assert capsys.readouterr().out == render(st) + "\n"
        assert cli.main(["status", "--json", "-c", str(config)]) == cli.EXIT_OK
        assert json.loads(capsys.readouterr().out) == st.to_json()
    finally:
        server.stop()


def test_status_command_explains_a_document_it_cannot_read(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = StatusServer(config.parent / SOCKET_NAME, _Document)  # type: ignore[arg-type]
    server.start()
    try:
        assert cli.main(["status", "-c", str(config)]) == cli.EXIT_FAILURE
        err = capsys.readouterr().err
        assert "status document (version 0.0.1) is not readable" in err and "--json" in err
        assert cli.main(["status", "--json", "-c", str(config)]) == cli.EXIT_OK  # shown as it is
        assert json.loads(capsys.readouterr().out) == {"version": "0.0.1", "pid": 1}
    finally:
        server.stop()
