"""The .deb packages: build both, check control fields and contents, and run a real dpkg install,
upgrade, remove and purge of the amd64 one into a throwaway root.

The install is `dpkg --root=DIR --force-script-chrootless`: dpkg itself unpacks, tracks conffiles and
runs the package's real maintainer scripts, which honour $DPKG_ROOT (user creation with
`useradd --prefix`, deb-systemd-helper's enablement links inside DIR). `--force-depends` stands in
for the Depends (python3, python3-venv, passwd) that an empty root lacks: the venv is built by the
shipped make-venv with this host's /usr/bin/python3, which is what a Debian 12 target has. A live
systemd is not involved (the scripts skip systemctl when DPKG_ROOT is set), so starting the service
is not covered here; `systemd-analyze verify` checks the unit against the installed binary instead.

Wheels are cached in ~/.cache/edgecollect-deb (the first build downloads ~130 MB).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.packaging.conftest import BUILD, ROOT, VERSION, need

pytestmark = pytest.mark.integration


def run(*cmd: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], check=True, capture_output=True, text=True
    ).stdout.strip()


def contents(deb: Path) -> list[str]:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    return [line.split()[5].removeprefix(".") for line in listing.splitlines()]


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_control_fields(debs: dict[str, Path], arch: str) -> None:
    deb = debs[arch]
    assert field(deb, "Package") == "edgecollect"
    assert field(deb, "Version") == VERSION
    assert field(deb, "Architecture") == arch
    depends = field(deb, "Depends")
    assert "python3 (>= 3.11)" in depends and "python3 (<< 3.12)" in depends
    assert "python3-venv" in depends
    assert int(field(deb, "Installed-Size")) > 10_000  # KiB: the wheels are in
    info = run("dpkg-deb", "-I", str(deb), "conffiles")
    assert info.stdout.split() == ["/etc/edgecollect/edgecollect.toml"]


@pytest.mark.parametrize(
    ("arch", "machine", "other"), [("amd64", "x86_64", "aarch64"), ("arm64", "aarch64", "x86_64")]
)
def test_contents(debs: dict[str, Path], arch: str, machine: str, other: str) -> None:
    files = contents(debs[arch])
    for path in (
        "/usr/lib/systemd/system/edgecollect.service",
        "/etc/edgecollect/edgecollect.toml",
        "/opt/edgecollect/lib/make-venv",
        "/usr/bin/edgecollect",
        "/opt/edgecollect/README.md",
        "/usr/share/doc/edgecollect/examples/rpi-gateway.toml",
        f"/opt/edgecollect/wheels/cp311/edgecollect-{VERSION}-py3-none-any.whl",
    ):
        assert path in files, path
    wheels = [Path(f).name for f in files if f.endswith(".whl")]
    pyarrow = [w for w in wheels if w.startswith("pyarrow-")]
    assert len(pyarrow) == 1 and machine in pyarrow[0] and "cp311" in pyarrow[0], pyarrow
    assert not [w for w in wheels if other in w], f"{arch} package carries {other} wheels"
    assert [w for w in wheels if w.startswith("pymodbus-")], "the bundled modbus extra is missing"
    unit = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(debs[arch])], check=True, capture_output=True
    ).stdout
    assert (ROOT / "packaging" / "edgecollect.service").read_bytes() in unit


def test_arm64_wheels_install_offline_for_aarch64(debs: dict[str, Path], tmp_path: Path) -> None:
    """pip, told it is an aarch64 CPython 3.11, resolves edgecollect from the shipped wheels alone."""
    tree = tmp_path / "x"
    subprocess.run(["dpkg-deb", "-x", str(debs["arm64"]), str(tree)], check=True)
    proc = subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--disable-pip-version-check",
            "--find-links", str(tree / "opt/edgecollect/wheels/cp311"), "--only-binary=:all:",
            "--platform", "manylinux_2_36_aarch64", "--platform", "manylinux_2_28_aarch64",
            "--platform", "manylinux2014_aarch64", "--python-version", "3.11", "--implementation", "cp",
            "--target", str(tmp_path / "target"), f"edgecollect=={VERSION}",
        ],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pyarrow" in proc.stdout and "grpcio" in proc.stdout


def test_second_build_uses_the_wheel_cache(debs: dict[str, Path], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(BUILD), "--out", str(tmp_path), "--arch", "arm64"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "pip download" not in proc.stderr  # the module fixture's build filled the cache
    assert (tmp_path / f"edgecollect_{VERSION}_arm64.deb").is_file()


# -- a real dpkg install into a throwaway root ------------------------------------------------------

# Directories any Debian system has that deb-systemd-helper writes into (and leaves, empty). /opt and
# /usr are not pre-made: in this root no package but ours owns them, so dpkg removes them on purge.
SKELETON_DIRS = ["var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log",
                 "etc/systemd/system", "var/lib/systemd"]
ACCOUNTS = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\ndialout:x:20:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\n",
    "etc/gshadow": "root:*::\ndialout:*::\n",
}


@pytest.fixture
def sysroot(tmp_path: Path) -> Iterator[Path]:
    """An empty Debian-like root: a dpkg database, the account files and the usual directories."""
    assert os.geteuid() == 0, "dpkg --root and the maintainer scripts' chown need root (CI runs as root)"
    root = tmp_path / "root"
    for d in SKELETON_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    (root / "var/lib/dpkg/available").touch()
    for rel, text in ACCOUNTS.items():
        (root / rel).write_text(text)
        (root / f"{rel}-").write_text(text)  # the backups shadow's tools keep, as on any system
    host_before = (Path("/opt/edgecollect").exists(), "edgecollect:" in Path("/etc/passwd").read_text())
    yield root
    # The scripts must have honoured DPKG_ROOT: nothing of ours may appear on the host.
    host_after = (Path("/opt/edgecollect").exists(), "edgecollect:" in Path("/etc/passwd").read_text())
    assert host_after == host_before


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [need("dpkg"), f"--root={root}", "--force-script-chrootless", "--force-depends",
         f"--log={root}/var/log/dpkg.log", *args],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def tree(root: Path) -> set[str]:
    skip = ("var/lib/dpkg", "var/log/dpkg.log")
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if not p.relative_to(root).as_posix().startswith(skip)}


def passwd_entry(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.split(":")[0] == name:
            return line.split(":")
    return None


def test_install_upgrade_remove_purge(debs: dict[str, Path], sysroot: Path, tmp_path: Path) -> None:
    root = sysroot
    before = tree(root)
    opt = root / "opt/edgecollect"
    state = root / "var/lib/edgecollect"
    conf = root / "etc/edgecollect/edgecollect.toml"

    dpkg(root, "-i", str(debs["amd64"]))

    # The agent runs from the venv postinst built, offline, from the shipped wheels.
    exe = opt / "venv/bin/edgecollect"
    version = subprocess.run([str(exe), "--version"], check=True, capture_output=True, text=True, timeout=120)
    assert version.stdout.strip() == f"edgecollect {VERSION}"
    # The packaged copy's clock floor is the source date (a Pi reading an earlier date is unsynced).
    # (cwd elsewhere: `python -c` would otherwise import the work tree's edgecollect.)
    code = "import edgecollect.timesync as t; print(t.BUILD_DATE_NS)"
    floor = run(str(opt / "venv/bin/python"), "-c", code, cwd=tmp_path)
    commits = run("git", "-C", str(ROOT), "log", "-20", "--format=%ct").stdout.split()
    assert floor.stdout.strip() and int(floor.stdout) // 10**9 in [int(c) for c in commits], floor.stdout
    # The bundled extra is installed, so a Modbus source can be configured offline.
    assert run(str(opt / "venv/bin/python"), "-c", "import pymodbus", cwd=tmp_path).returncode == 0
    env = dict(os.environ, STATE_DIRECTORY=str(state))
    check = run(str(exe), "check-config", str(conf), env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[spool]\nmax_size = \"lots\"\n")
    refused = run(str(exe), "check-config", str(bad), env=env)
    assert refused.returncode == 2 and "bad.toml:2" in refused.stderr, refused.stderr

    # The unit, verified against the binary the package installed (paths moved into the root).
    unit = root / "usr/lib/systemd/system/edgecollect.service"
    moved = tmp_path / "edgecollect.service"
    moved.write_text(unit.read_text().replace("/opt/edgecollect/", f"{opt}/"))
    verify = run(need("systemd-analyze"), "verify", str(moved))
    assert verify.returncode == 0 and verify.stderr.strip() == "", verify.stderr

    # User, state directory, enablement.
    user = passwd_entry(root, "edgecollect")
    assert user is not None and user[6] == "/usr/sbin/nologin"
    st = state.stat()
    assert st.st_uid == int(user[2]) and oct(st.st_mode & 0o777) == "0o750"
    wants = root / "etc/systemd/system/multi-user.target.wants/edgecollect.service"
    assert os.readlink(wants) == "/usr/lib/systemd/system/edgecollect.service"

    # Upgrade (reinstall over itself): a backlog in the spool and a locally edited config survive.
    spool = state / "spool"
    spool.mkdir()
    (spool / "0000000000000001.ecb").write_bytes(b"backlog")
    conf.write_text(conf.read_text() + "\n# edited on the gateway\n")
    dpkg(root, "-i", str(debs["amd64"]))
    assert (spool / "0000000000000001.ecb").read_bytes() == b"backlog"
    assert conf.read_text().endswith("# edited on the gateway\n")
    assert subprocess.run([str(exe), "--version"], capture_output=True, timeout=120).returncode == 0

    # Remove: the program goes, the config, the spool and the user stay.
    dpkg(root, "-r", "edgecollect")
    assert not opt.exists()
    assert not (root / "usr/bin/edgecollect").exists()
    assert conf.exists()
    assert (spool / "0000000000000001.ecb").exists()
    assert passwd_entry(root, "edgecollect") is not None

    # Purge: everything it installed or created is gone.
    dpkg(root, "-P", "edgecollect")
    assert tree(root) == before, sorted(tree(root) ^ before)
    for rel, text in ACCOUNTS.items():
        assert (root / rel).read_text() == text, rel
    status = (root / "var/lib/dpkg/status").read_text()
    assert not re.search(r"^Package: edgecollect$", status, re.M)


def _datagrams(sock: socket.socket, until: str, limit_s: float = 120.0) -> list[dict[str, str]]:
    """Notifications received until one carries `until` (e.g. "READY"); bounded so a hang fails."""
    got: list[dict[str, str]] = []
    deadline = time.monotonic() + limit_s  # over all datagrams: periodic STATUS lines must not extend it
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        got.append(fields)
        if until in fields:
            return got


def test_packaged_agent_speaks_sd_notify_and_answers_status(
    debs: dict[str, Path], sysroot: Path, tmp_path: Path
) -> None:
    """What systemd would see from ExecStart: READY=1, WATCHDOG=1, RELOADING=1 on SIGHUP, STOPPING=1
    on SIGTERM, and `edgecollect status` answering in between, all from the installed venv."""
    root = sysroot
    dpkg(root, "-i", str(debs["amd64"]))
    exe = root / "opt/edgecollect/venv/bin/edgecollect"
    state = root / "var/lib/edgecollect"
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    # As systemd does for WatchdogSec=4s: the agent beats only when the watchdog is armed.
    env = dict(os.environ, NOTIFY_SOCKET=str(notify_path), STATE_DIRECTORY=str(state), WATCHDOG_USEC="4000000")
    agent = subprocess.Popen(
        [str(exe), "run", "-c", str(root / "etc/edgecollect/edgecollect.toml")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        ready = _datagrams(sock, "READY")[-1]
        assert "backlog" in ready.get("STATUS", ""), ready
        assert any("WATCHDOG" in f for f in _datagrams(sock, "WATCHDOG"))

        status = run(str(exe), "status", "--json", env=dict(os.environ, STATE_DIRECTORY=str(state)))
        assert status.returncode == 0, status.stderr
        assert "spool" in json.loads(status.stdout)
        # The packaged wrapper defaults to the service's state directory for everything but `run`.
        wrapper = tmp_path / "edgecollect"
        text = (root / "usr/bin/edgecollect").read_text()
        wrapper.write_text(text.replace("/opt/edgecollect/", f"{root}/opt/edgecollect/"))
        wrapper.chmod(0o755)
        plain = {k: v for k, v in os.environ.items() if k != "STATE_DIRECTORY"}
        via_wrapper = run(str(wrapper), "status", env=plain)
        assert "/var/lib/edgecollect/status.sock" in via_wrapper.stdout + via_wrapper.stderr

        agent.send_signal(signal.SIGHUP)
        assert any("RELOADING" in f for f in _datagrams(sock, "READY"))
        agent.send_signal(signal.SIGTERM)
        assert any("STOPPING" in f for f in _datagrams(sock, "STOPPING"))
        assert agent.wait(timeout=60) == 0, agent.stderr.read() if agent.stderr else ""
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        sock.close()
    assert list((state / "spool").glob("*.ecb")), "the shutdown flush left no batch in the spool"
    dpkg(root, "-P", "edgecollect")
