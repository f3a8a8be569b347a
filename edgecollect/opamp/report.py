"""Pure builders of what the agent reports: AgentDescription, ComponentHealth, EffectiveConfig.

No I/O beyond reading the host's identity files (root is a parameter, so tests use a tree).
"""

from __future__ import annotations

import platform
import socket
import time
from pathlib import Path
from typing import Any

from edgecollect import __version__
from edgecollect.opamp.proto import anyvalue_pb2, opamp_pb2
from edgecollect.opamp.redact import redacted_toml

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


def health_key(status: dict[str, Any]) -> tuple[object, ...]:
    """What makes a health report worth sending before the heartbeat: up/down, the upstream state
    and its last error, a source dying. (The backlog changes every batch: it rides along.)"""
    up = status.get("upstream", {})
    dead = tuple(sorted(n for n, s in status.get("sources", {}).items() if not s.get("alive")))
    return (up.get("state"), up.get("last_error"), dead)


def health(status: dict[str, Any], started_ns: int, last_error: str) -> opamp_pb2.ComponentHealth:
    """Agent health from `Agent.status()`: healthy while every source runs and the upstream is not
    failing; the backlog and upstream state go in the status text and per-component entries."""
    now = time.time_ns()
    up = status.get("upstream", {})
    sp = status.get("spool", {})
    dead = sorted(n for n, s in status.get("sources", {}).items() if not s.get("alive"))
    up_state = str(up.get("state", "unknown"))
    up_error = str(up.get("last_error") or "")
    backlog = f"backlog {sp.get('files', 0)} batches / {sp.get('points', 0)} points / {sp.get('bytes', 0)} bytes"
    text = f"running; upstream {up_state}; {backlog}"
    if dead:
        text += "; sources down: " + ", ".join(dead)
    components = {
        "upstream": opamp_pb2.ComponentHealth(
            healthy="endpoint" not in up or up_state not in ("backoff", "offline"), status=up_state,
            last_error=up_error, status_time_unix_nano=now),
        "spool": opamp_pb2.ComponentHealth(healthy=True, status=backlog, status_time_unix_nano=now),
    }
    for name, src in status.get("sources", {}).items():
        alive = bool(src.get("alive"))
        components["source." + name] = opamp_pb2.ComponentHealth(
            healthy=alive, status="running" if alive else "stopped", status_time_unix_nano=now)
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
