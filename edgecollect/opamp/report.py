"""Pure builders of what the agent reports: AgentDescription, ComponentHealth, EffectiveConfig.

No I/O beyond reading the host's identity files (root is a parameter, so tests use a tree).
"""

from __future__ import annotations

import platform
import socket
import time
from pathlib import Path

from edgecollect import __version__
from edgecollect.opamp.proto import anyvalue_pb2, opamp_pb2
from edgecollect.opamp.redact import redacted_toml
from edgecollect.statusmodel import AgentStatus

CONFIG_KEY = "edgecollect.toml"
CONTENT_TYPE = "application/toml"


def board_model(root: Path = Path("/")) -> str:
    """The board name the firmware puts in the device tree ("Raspberry Pi 4 Model B Rev 1.4"), or ""."""
    try:
        raw = (root / "proc/device-tree/model").read_bytes()
    except OSError:
        return ""
    return raw.rstrip(b"\x00").decode("utf-8", "replace").strip()


def _kv(key: str, value: str) -> anyvalue_pb2.KeyValue:
    return anyvalue_pb2.KeyValue(key=key, value=anyvalue_pb2.AnyValue(string_value=value))


def description(instance_uid: bytes, root: Path = Path("/")) -> opamp_pb2.AgentDescription:
    identifying = [_kv("service.name", "edgecollect"), _kv("service.version", __version__),
                   _kv("service.instance.id", instance_uid.hex())]
    uname = platform.uname()
    non_identifying = [_kv("host.name", socket.gethostname()), _kv("os.type", uname.system.lower()),
                       _kv("os.description", f"{uname.system} {uname.release}"),
                       _kv("host.arch", uname.machine)]
    model = board_model(root)
    if model:
        non_identifying.append(_kv("host.model", model))
    return opamp_pb2.AgentDescription(identifying_attributes=identifying,
                                      non_identifying_attributes=non_identifying)


def health_key(status: AgentStatus | None) -> tuple[object, ...]:
    """What makes a health report worth sending before the heartbeat: up/down, the upstream state
    and its last error, a source stopping. (The backlog changes every batch: it rides along.)"""
    if status is None:
        return ("reloading",)
    error = status.upstream.last_error if status.upstream is not None else ""
    return (status.upstream_state, error, status.stopped_sources)


def health(status: AgentStatus | None, started_ns: int, last_error: str) -> opamp_pb2.ComponentHealth:
    """Agent health from `Agent.status()`: healthy while every source runs and the upstream is not
    failing; the backlog and upstream state go in the status text and per-component entries.
    None: a reload is between two pipelines."""
    now = time.time_ns()
    if status is None:
        return opamp_pb2.ComponentHealth(healthy=True, start_time_unix_nano=started_ns, status="reloading",
                                         last_error=last_error, status_time_unix_nano=now)
    up, sp = status.upstream, status.spool
    dead = status.stopped_sources
    up_error = up.last_error if up is not None else ""
    backlog = f"backlog {sp.files} batches / {sp.points} points / {sp.bytes} bytes"
    text = f"running; upstream {status.upstream_state}; {backlog}"
    if dead:
        text += "; sources down: " + ", ".join(dead)
    components = {
        # No [upstream] is offline by design, not a failure.
        "upstream": opamp_pb2.ComponentHealth(
            healthy=up is None or not up.failing, status=status.upstream_state,
            last_error=up_error, status_time_unix_nano=now),
        "spool": opamp_pb2.ComponentHealth(healthy=True, status=backlog, status_time_unix_nano=now),
    }
    for src in status.sources:
        components["source." + src.name] = opamp_pb2.ComponentHealth(
            healthy=src.running, status=src.state, status_time_unix_nano=now)
    return opamp_pb2.ComponentHealth(
        healthy=not dead, start_time_unix_nano=started_ns, status=text,
        last_error=last_error or up_error, status_time_unix_nano=now, component_health_map=components)


def effective_config(config_text: str) -> opamp_pb2.EffectiveConfig:
    """The running config, redacted; an unparsable file (cannot happen for a running config, but
    never send it raw) is reported as a comment."""
    try:
        body = redacted_toml(config_text)
    except ValueError:
        body = "# the running config could not be re-read for redaction\n"
    files = {CONFIG_KEY: opamp_pb2.AgentConfigFile(body=body.encode(), content_type=CONTENT_TYPE)}
    return opamp_pb2.EffectiveConfig(config_map=opamp_pb2.AgentConfigMap(config_map=files))
