"""The registry: every `upstream.protocol` has an exporter, each imports only what it needs, and
the typed modes say which protocol carries a signal and whether it is a fallback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from edgecollect.exporters.contracts import Mode
from edgecollect.exporters.registry import EXPORTERS, make_exporter
from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig, UpstreamProtocol
from edgecollect.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[2]


def test_every_configurable_protocol_has_an_exporter_of_that_protocol() -> None:
    assert set(EXPORTERS) == set(get_args(UpstreamProtocol))
    for protocol in EXPORTERS:
        cfg = UpstreamConfig("127.0.0.1:9", protocol=protocol, tls=TlsConfig(insecure=True))
        exporter = make_exporter(cfg, Telemetry(), lambda: None)
        try:
            assert exporter.protocol == protocol
            assert {m.protocol for m in exporter.modes().values()} == {protocol}
            assert not any(m.fallback for m in exporter.modes().values())
        finally:
            exporter.close(0.1)


def modules_after_making(protocol: str) -> set[str]:
    """sys.modules of a fresh interpreter that built (and closed) the exporter for `protocol`."""
    probe = (
        "import json, sys\n"
        "from edgecollect.exporters.registry import make_exporter\n"
        "from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig\n"
        "from edgecollect.telemetry import Telemetry\n"
        f"cfg = UpstreamConfig('127.0.0.1:9', protocol={protocol!r}, tls=TlsConfig(insecure=True))\n"
        "make_exporter(cfg, Telemetry(), lambda: None).close(0.1)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("protocol", ["otlp_http"])
def test_otlp_http_never_loads_grpc(protocol: str) -> None:
    modules = modules_after_making(protocol)
    assert "edgecollect.exporters.otlp_http" in modules
    assert not [m for m in modules if m == "grpc" or m.startswith("grpc.")]
    assert "edgecollect.exporters.otap" not in modules


@pytest.mark.parametrize("protocol", ["otap", "otlp_grpc"])
def test_grpc_protocols_never_load_http_client_or_each_others_module(protocol: str) -> None:
    modules = modules_after_making(protocol)
    assert "grpc" in modules
    assert "http.client" not in modules
    assert "edgecollect.exporters.otlp_http" not in modules
    if protocol == "otlp_grpc":
        assert "edgecollect.exporters.otap" not in modules


def test_a_mode_is_text_in_status_and_typed_in_code() -> None:
    assert json.dumps({"metrics": Mode.OTLP_GRPC_FALLBACK}) == '{"metrics": "otlp_grpc (fallback)"}'
    assert f"{Mode.OTAP}" == "otap"
    assert Mode.OTLP_GRPC_FALLBACK.fallback and Mode.OTLP_GRPC_FALLBACK.protocol == "otlp_grpc"
    assert not Mode.OTAP.fallback and Mode.OTAP.protocol == "otap"
