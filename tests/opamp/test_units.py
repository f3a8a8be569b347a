"""OpAMP client pieces without a server: redaction, the [opamp] table, state-dir files, reports."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import tomllib

from edgecollect.config import loads
from edgecollect.errors import ConfigError
from edgecollect.opamp import report
from edgecollect.opamp.files import RemoteConfigStore, instance_uid, startup_config
from edgecollect.opamp.redact import REDACTED, redacted_toml
from edgecollect.statusmodel import SpoolStatus
from tests.support.status import sample_source, sample_status, sample_upstream

REPO = Path(__file__).resolve().parents[2]

SECRET_CONFIG = """
[upstream]
endpoint = "https://gw.example:4317"
headers = { Authorization = "Bearer tok-123", "X-Tenant" = "env:TENANT" }

[opamp]
endpoint = "https://opamp.example:4320/v1/opamp"
headers = { "X-Api-Key" = "file:/etc/edgecollect/opamp.key" }

[[sources.mqtt]]
url = "mqtts://sensor:pa55word@broker.local:8883"
password = "hunter2"
topics = ["tele/#"]

[[sources.mqtt]]
url = "mqtt://broker.local:1883"
password = "env:MQTT_PASSWORD"
topics = ["zigbee2mqtt/#"]
"""


def test_effective_config_redacts_literals_and_keeps_references() -> None:
    out = redacted_toml(SECRET_CONFIG)
    for literal in ("tok-123", "pa55word", "hunter2"):
        assert literal not in out
    doc = tomllib.loads(out)
    assert doc["upstream"]["headers"] == {"Authorization": REDACTED, "X-Tenant": "env:TENANT"}
    assert doc["opamp"]["headers"] == {"X-Api-Key": "file:/etc/edgecollect/opamp.key"}
    assert doc["sources"]["mqtt"][0]["password"] == REDACTED
    assert doc["sources"]["mqtt"][0]["url"] == f"mqtts://sensor:{REDACTED}@broker.local:8883"
    assert doc["sources"]["mqtt"][1]["password"] == "env:MQTT_PASSWORD"
    # Everything that is not a secret is reported as it runs.
    assert doc["sources"]["mqtt"][1]["topics"] == ["zigbee2mqtt/#"]
    assert doc["upstream"]["endpoint"] == "https://gw.example:4317"


def test_redacted_config_round_trips_the_shipped_config() -> None:
    text = (REPO / "configs" / "edgecollect.toml").read_text()
    assert tomllib.loads(redacted_toml(text)) == tomllib.loads(text)


def test_opamp_table_errors_name_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r'x\.toml:3: opamp\.heartbeat: expected a duration from "1s" to "1d"'):
        loads('[opamp]\nendpoint = "http://h:4320/v1/opamp"\nheartbeat = "0s"\ntls.insecure = true\n', "x.toml")
    with pytest.raises(ConfigError, match=r"x\.toml:2: opamp\.endpoint: expected https://"):
        loads('[opamp]\nendpoint = "http://h:4320/v1/opamp"\n', "x.toml")
    cfg = loads('[opamp]\nendpoint = "https://h:4320/v1/opamp"\n')
    assert cfg.opamp.heartbeat == 30.0 and cfg.opamp.accept_remote_config is False


def test_instance_uid_is_made_once_and_kept(tmp_path: Path) -> None:
    first = instance_uid(tmp_path)
    assert len(first) == 16 and first[6] >> 4 == 7  # a UUIDv7
    assert instance_uid(tmp_path) == first
    assert (tmp_path / "opamp" / "instance_uid").read_bytes() == first


def test_startup_prefers_a_valid_stored_remote_config_and_drops_a_stale_pending_one(tmp_path: Path) -> None:
    local = loads(f'[agent]\nstate_dir = "{tmp_path}"\n[opamp]\nendpoint = "https://h/v1/opamp"\n'
                  'accept_remote_config = true\n', "local.toml")
    store = RemoteConfigStore(tmp_path)
    assert startup_config(local) is local
    store.stage(f'[agent]\nstate_dir = "{tmp_path}"\nsummary_interval = "9m"\n', b"\x01\x02")
    store.commit()
    store.stage("[buffer]\nmax_points = 5\n", b"\x03")  # power lost while applying this one
    chosen = startup_config(local)
    assert chosen.path == str(store.current) and chosen.agent.summary_interval == 540.0
    assert not store.pending.exists()
    assert store.applied_hash() == b"\x01\x02"
    # accept_remote_config = false: the local file rules.
    report_only = loads(f'[agent]\nstate_dir = "{tmp_path}"\n[opamp]\nendpoint = "https://h/v1/opamp"\n')
    assert startup_config(report_only) is report_only
    # A stored file that no longer validates is ignored, not fatal.
    store.current.write_text("[buffer]\nmax_points = 'lots'\n")
    assert startup_config(local) is local


def test_board_model_comes_from_the_device_tree(tmp_path: Path) -> None:
    (tmp_path / "proc" / "device-tree").mkdir(parents=True)
    (tmp_path / "proc" / "device-tree" / "model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    desc = report.description(b"\x01" * 16, root=tmp_path)
    attrs = {kv.key: kv.value.string_value for kv in desc.non_identifying_attributes}
    assert attrs["host.model"] == "Raspberry Pi 4 Model B Rev 1.4"
    ident = {kv.key: kv.value.string_value for kv in desc.identifying_attributes}
    assert ident["service.name"] == "edgecollect" and ident["service.instance.id"] == "01" * 16
    assert "host.model" not in {kv.key for kv in report.description(b"\x01" * 16, root=tmp_path / "x")
                                .non_identifying_attributes}


def test_health_reports_backlog_upstream_and_dead_sources() -> None:
    status = sample_status(upstream=sample_upstream(state="backoff", last_error="UNAVAILABLE"),
                           spool=SpoolStatus(files=3, bytes=4096, points=120, oldest_age_s=5.0, max_size=1 << 20),
                           sources=(sample_source("host"), sample_source("mqtt.0", running=False)))
    h = report.health(status, 1, "")
    assert not h.healthy and "sources down: mqtt.0" in h.status and "backlog 3 batches / 120 points" in h.status
    assert h.last_error == "UNAVAILABLE"
    assert not h.component_health_map["upstream"].healthy
    assert h.component_health_map["upstream"].status == "backoff"
    assert h.component_health_map["source.mqtt.0"].status == "stopped"
    connected = replace(status, upstream=sample_upstream(state="connected"))
    assert report.health_key(status) != report.health_key(connected)
    assert report.health_key(connected) != report.health_key(replace(connected, sources=status.sources[:1]))


def test_health_without_an_upstream_is_healthy_and_says_offline() -> None:
    h = report.health(sample_status(upstream=None), 1, "")
    assert h.healthy and "upstream offline" in h.status
    assert h.component_health_map["upstream"].healthy and h.component_health_map["upstream"].status == "offline"


def test_health_between_two_pipelines_says_reloading() -> None:
    h = report.health(None, 1, "")
    assert h.healthy and h.status == "reloading" and not h.component_health_map
    assert report.health_key(None) != report.health_key(sample_status())


def test_nothing_of_opamp_is_imported_when_it_is_off(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from edgecollect.config import loads\n"
        "from edgecollect import cli, supervisor, runtime, status\n"
        f"cfg = loads('[agent]\\nstate_dir = \"{tmp_path}\"\\n')\n"
        "agent = runtime.Agent(cfg)\n"
        "loaded = [m for m in sys.modules if m.startswith('edgecollect.opamp')]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
