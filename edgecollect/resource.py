"""The resource: who is reporting (gateway host, agent), from detection plus config."""

from __future__ import annotations

import platform
import socket
from collections.abc import Mapping
from pathlib import Path

from edgecollect import __version__
from edgecollect.model import AttrValue, Resource, attrs


def boot_id(root: Path = Path("/")) -> str:
    try:
        return (root / "proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def machine_id(root: Path = Path("/")) -> str:
    for rel in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            value = (root / rel).read_text().strip()
        except OSError:
            continue
        if value:
            return value
    return ""


def detect(extra: Mapping[str, AttrValue]) -> Resource:
    detected: dict[str, AttrValue] = {
        "service.name": "edgecollect",
        "service.version": __version__,
        "host.name": socket.gethostname(),
        "host.arch": platform.machine(),
        "os.type": platform.system().lower(),
    }
    mid = machine_id()
    if mid:
        detected["host.id"] = mid
    detected.update(extra)  # config wins: a fleet may name its gateways its own way
    return Resource(attrs(detected))
