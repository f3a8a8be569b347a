"""The systemd unit: required directives, `systemd-analyze security` exposure <= 2.0, clean verify.

`systemd-analyze verify` insists that ExecStart= binaries exist and are executable. Here the unit is
verified as a copy whose /opt/edgecollect/venv/bin/edgecollect paths point at a real executable in a
temp dir (every other line is unchanged); test_deb.py verifies it again against the edgecollect
binary of a venv built from the .deb.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "edgecollect.service"
BIN = "/opt/edgecollect/venv/bin/edgecollect"
MAX_EXPOSURE = 2.0


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: run packaging/install-test-deps.sh (apt-get install systemd)"
    return found


def directives(text: str) -> dict[str, list[str]]:
    """Section.Key -> values, repeated keys kept in order (systemd units allow repeats)."""
    out: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def exposure(unit: Path) -> float:
    proc = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", str(unit)],
        capture_output=True, text=True, timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert match, f"no overall exposure in output:\n{proc.stdout}\n{proc.stderr}"
    return float(match.group(1))


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=120,
    )


def with_binary(tmp_path: Path, text: str, binary: str) -> Path:
    copy = tmp_path / "edgecollect.service"
    copy.write_text(text.replace(BIN, binary))
    return copy


def test_required_directives() -> None:
    d = directives(UNIT.read_text())

    def s(key: str) -> list[str]:
        return d.get(f"Service.{key}", [])

    assert s("Type") == ["notify"]
    assert s("NotifyAccess") == ["main"]
    assert s("WatchdogSec") and s("WatchdogSec")[0] not in ("0", "infinity")
    assert s("ExecStartPre") == [f"{BIN} check-config /etc/edgecollect/edgecollect.toml"]
    assert s("ExecStart") == [f"{BIN} run -c /etc/edgecollect/edgecollect.toml"]
    assert s("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert s("User") == ["edgecollect"] or s("DynamicUser") == ["yes"]
    assert s("StateDirectory") == ["edgecollect"]
    assert s("ConfigurationDirectory") == ["edgecollect"]
    assert s("ProtectSystem") == ["strict"]
    assert s("PrivateTmp") == ["yes"]
    assert s("NoNewPrivileges") == ["yes"]
    assert s("CapabilityBoundingSet") == [""]
    assert s("RestrictAddressFamilies") == ["AF_INET AF_INET6 AF_UNIX AF_NETLINK"]
    assert s("SupplementaryGroups") == ["dialout"]
    assert s("MemoryMax")
    allowed = " ".join(s("DeviceAllow"))
    for cls in ("ttyUSB", "ttyACM", "ttyAMA"):
        assert f"char-{cls} rw" in allowed, f"serial adapters of class {cls} must stay reachable"
    assert d.get("Install.WantedBy") == ["multi-user.target"]


def test_security_exposure_is_at_most_2() -> None:
    score = exposure(UNIT)
    print(f"systemd-analyze security exposure: {score}")
    assert score <= MAX_EXPOSURE


def test_exposure_check_can_fail(tmp_path: Path) -> None:
    """The parser reads a real number: an unhardened unit scores far above the limit."""
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert exposure(bare) > 5.0


def test_verify_passes(tmp_path: Path) -> None:
    exe = tmp_path / "edgecollect"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    proc = verify(with_binary(tmp_path, UNIT.read_text(), str(exe)))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "", f"verify warned:\n{proc.stderr}"


def test_verify_reports_a_misspelt_directive(tmp_path: Path) -> None:
    exe = tmp_path / "edgecollect"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    broken = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivilege=yes")
    proc = verify(with_binary(tmp_path, broken, str(exe)))
    assert "NoNewPrivilege" in proc.stderr


@pytest.mark.parametrize("key", ["ExecStart", "ExecStartPre"])
def test_commands_use_the_packaged_venv(key: str) -> None:
    for value in directives(UNIT.read_text())[f"Service.{key}"]:
        assert value.startswith(BIN + " ")
