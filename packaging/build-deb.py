#!/usr/bin/env python3
"""Build edgecollect_<version>_<arch>.deb for amd64 and arm64 from wheels, on any x86_64 (or arm64) host.

What goes in a package, and why wheels rather than a ready-made virtual environment:

    /opt/edgecollect/wheels/cp311/*.whl   every dependency for <arch> (manylinux, binary only) + ours,
                                          + the optional extras in BUNDLED_EXTRAS (pymodbus)
    /opt/edgecollect/lib/make-venv        creates /opt/edgecollect/venv with the target's python3 and
                                          installs edgecollect offline from those wheels (postinst)
    /opt/edgecollect/README.md            packaging/README.md
    /usr/lib/systemd/system/edgecollect.service
    /etc/edgecollect/edgecollect.toml     conffile (a copy of configs/edgecollect.toml)
    /usr/bin/edgecollect                  wrapper: the venv's command, pointed at the service's state
    /usr/share/doc/edgecollect/examples/  the example configs of configs/
    DEBIAN/{control,conffiles,postinst,prerm,postrm}

A venv holds absolute symlinks to the interpreter that made it and shebangs naming its own path, so
one built here would point at this machine's python. Creating it in postinst with the target's
/usr/bin/python3 keeps the package honest across machines; the wheels make that step offline
(`pip install --no-index --find-links`). The cost is ~1 minute of postinst on a Pi and a dependency on
python3-venv. Binary wheels are specific to a CPython minor version, so the package depends on
exactly the versions it carries wheels for (default 3.11: Debian 12 and Raspberry Pi OS bookworm);
`--python 3.11,3.12` carries both.

The arm64 wheels are fetched on any host with `pip download --platform manylinux_2_XX_aarch64`
(pyarrow publishes only manylinux_2_28 for aarch64). Downloads are cached outside the repository
(default ~/.cache/edgecollect-deb), keyed by the requirement list, so rebuilding takes seconds.

Usage: packaging/build-deb.py [--arch amd64,arm64] [--python 3.11] [--out dist] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
DEBIAN = PACKAGING / "debian"

# Debian architecture -> the machine name in manylinux platform tags.
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
# glibc versions whose manylinux wheels the targets can load: Debian 12 / Raspberry Pi OS bookworm
# ship glibc 2.36. manylinux2014 is the legacy spelling of manylinux_2_17.
GLIBC_MINORS = range(17, 37)

PLACEHOLDER_CONFIG = """\
# edgecollect configuration. Every key has a default: an empty file is a valid config.
# Reference of all keys: /opt/edgecollect/README.md and `edgecollect check-config FILE`.
#
# [upstream]
# endpoint = "collector.example:4317"
# protocol = "otap"
"""


def run(cmd: list[str], **kwargs: object) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


# Optional features shipped in the package and installed into its venv, so a gateway can turn them on
# in its config without network access. They cost disk only: their modules are imported only when a
# config uses them. pymodbus is one pure-Python wheel (~200 KB); a Modbus meter added in the field is
# common, and the venv is rebuilt offline from these wheels on every upgrade.
BUNDLED_EXTRAS = ("modbus",)


def project() -> tuple[str, list[str]]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return str(meta["version"]), [str(d) for d in meta["dependencies"]]


def extras_requirements() -> list[str]:
    """The requirements of BUNDLED_EXTRAS (downloaded and cached apart from the core's)."""
    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("optional-dependencies", {})
    return [str(d) for extra in BUNDLED_EXTRAS for d in optional.get(extra, [])]


def platforms(machine: str) -> list[str]:
    tags = [f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS]
    return [*tags, f"manylinux2014_{machine}"]


def cp_tag(python: str) -> str:
    major, minor = python.split(".")
    return f"cp{major}{minor}"


def download_wheels(requirements: list[str], arch: str, python: str, cache: Path) -> Path:
    """All dependency wheels for one (arch, python), from the cache when the requirements are unchanged."""
    machine = ARCHES[arch]
    key = hashlib.sha256(json.dumps([requirements, platforms(machine)]).encode()).hexdigest()[:16]
    dest = cache / f"{arch}-{cp_tag(python)}-{key}"
    done = dest / ".complete"
    if done.exists():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
        "--dest", str(tmp),
    ]
    for tag in platforms(machine):
        cmd += ["--platform", tag]
    run([*cmd, *requirements])
    (tmp / ".complete").write_text(json.dumps({"requirements": requirements, "arch": arch}))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def build_own_wheel(out: Path) -> Path:
    """Our pure-Python wheel, built from a copy so the work tree gets no build/ or egg-info."""
    with tempfile.TemporaryDirectory(prefix="edgecollect-src-") as tmp:
        src = Path(tmp)
        shutil.copy2(ROOT / "pyproject.toml", src)
        readme = ROOT / "README.md"
        (src / "README.md").write_text(readme.read_text() if readme.exists() else "edgecollect\n")
        shutil.copytree(
            ROOT / "edgecollect", src / "edgecollect",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        stamp_build_date(src / "edgecollect" / "timesync.py")
        run([
            sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-build-isolation", "--wheel-dir", str(out), str(src),
        ])
    wheels = sorted(out.glob("edgecollect-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one edgecollect wheel in {out}, found {wheels}")
    return wheels[0]


BUILD_DATE_LINE = re.compile(r"^BUILD_DATE_NS = (\d[\d_]*) \* 1_000_000_000(.*)$", re.M)


def source_date() -> int | None:
    """Seconds since the epoch this source is from: $SOURCE_DATE_EPOCH, else the HEAD commit's time."""
    if os.environ.get("SOURCE_DATE_EPOCH", "").isdigit():
        return int(os.environ["SOURCE_DATE_EPOCH"])
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
    )
    return int(proc.stdout) if proc.returncode == 0 and proc.stdout.strip().isdigit() else None


def stamp_build_date(timesync: Path) -> None:
    """Raise timesync.BUILD_DATE_NS in the packaged copy to the source date.

    A clock reading earlier than the release's own date is certainly wrong, so the packaged agent
    flags samples taken on a Pi that booted at a stale date even where adjtimex is unavailable. The
    source date (not the build machine's clock) keeps builds reproducible.
    """
    text = timesync.read_text()
    match = BUILD_DATE_LINE.search(text)
    if match is None:
        raise SystemExit(f"{timesync}: no 'BUILD_DATE_NS = <seconds> * 1_000_000_000' line to stamp")
    floor = int(match.group(1).replace("_", ""))
    date = source_date()
    if date is None or date <= floor:
        return
    line = f"BUILD_DATE_NS = {date} * 1_000_000_000  # stamped by packaging/build-deb.py: source date"
    timesync.write_text(text[: match.start()] + line + text[match.end():])


def python_depends(pythons: list[str]) -> str:
    """python3 (>= lowest), python3 (<< one past the highest): binary wheels fix the minor version."""
    versions = sorted(tuple(int(p) for p in v.split(".")) for v in pythons)
    lo, hi = versions[0], versions[-1]
    return f"python3 (>= {lo[0]}.{lo[1]}), python3 (<< {hi[0]}.{hi[1] + 1})"


def installed_size_kib(tree: Path) -> int:
    total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file() and "DEBIAN" not in p.parts)
    return (total + 1023) // 1024


def md5sums(tree: Path) -> str:
    """DEBIAN/md5sums: what `dpkg --verify` checks; conffiles are tracked by dpkg separately."""
    lines = []
    for path in sorted(tree.rglob("*")):
        rel = path.relative_to(tree)
        if path.is_file() and rel.parts[0] not in ("DEBIAN", "etc"):
            lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel.as_posix()}\n")
    return "".join(lines)


def substitute(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise SystemExit(f"unsubstituted placeholders: {left}")
    return text


def stage(
    arch: str, version: str, pythons: list[str], own: Path, wheel_dirs: dict[str, list[Path]], tree: Path
) -> None:
    values = {"VERSION": version, "ARCH": arch, "PYTHON_DEPENDS": python_depends(pythons),
              "EXTRAS": ",".join(BUNDLED_EXTRAS)}
    opt = tree / "opt" / "edgecollect"
    for python in pythons:
        dest = opt / "wheels" / cp_tag(python)
        dest.mkdir(parents=True)
        for whl in sorted(w for d in wheel_dirs[python] for w in d.glob("*.whl")):
            shutil.copy2(whl, dest / whl.name)
        shutil.copy2(own, dest / own.name)
    lib = opt / "lib"
    lib.mkdir(parents=True)
    (lib / "make-venv").write_text(substitute((DEBIAN / "make-venv").read_text(), values))
    (lib / "make-venv").chmod(0o755)
    shutil.copy2(PACKAGING / "README.md", opt / "README.md")

    unit_dir = tree / "usr" / "lib" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    shutil.copy2(PACKAGING / "edgecollect.service", unit_dir / "edgecollect.service")

    etc = tree / "etc" / "edgecollect"
    etc.mkdir(parents=True)
    reference = ROOT / "configs" / "edgecollect.toml"
    (etc / "edgecollect.toml").write_text(reference.read_text() if reference.exists() else PLACEHOLDER_CONFIG)

    bindir = tree / "usr" / "bin"
    bindir.mkdir(parents=True)
    shutil.copy2(DEBIAN / "edgecollect-wrapper", bindir / "edgecollect")
    (bindir / "edgecollect").chmod(0o755)

    doc = tree / "usr" / "share" / "doc" / "edgecollect"
    doc.mkdir(parents=True)
    shutil.copy2(DEBIAN / "copyright", doc / "copyright")
    examples = doc / "examples"
    examples.mkdir()
    for example in sorted((ROOT / "configs").glob("*.toml")):
        shutil.copy2(example, examples / example.name)

    control_dir = tree / "DEBIAN"
    control_dir.mkdir()
    values["INSTALLED_SIZE"] = str(installed_size_kib(tree))
    (control_dir / "control").write_text(substitute((DEBIAN / "control").read_text(), values))
    (control_dir / "conffiles").write_text("/etc/edgecollect/edgecollect.toml\n")
    (control_dir / "md5sums").write_text(md5sums(tree))
    for script in ("postinst", "prerm", "postrm"):
        target = control_dir / script
        target.write_text(substitute((DEBIAN / script).read_text(), values))
        target.chmod(0o755)
    for path in tree.rglob("*"):
        # dpkg-deb keeps modes: make them independent of this machine's umask.
        if path.is_dir():
            path.chmod(0o755)
        elif not os.access(path, os.X_OK):
            path.chmod(0o644)


def build(arches: list[str], pythons: list[str], out: Path, cache: Path) -> list[Path]:
    version, requirements = project()
    extras = extras_requirements()
    out.mkdir(parents=True, exist_ok=True)
    debs = []
    with tempfile.TemporaryDirectory(prefix="edgecollect-deb-") as tmp:
        own = build_own_wheel(Path(tmp) / "own")
        for arch in arches:
            wheel_dirs = {
                p: [download_wheels(reqs, arch, p, cache) for reqs in (requirements, extras) if reqs] for p in pythons
            }
            tree = Path(tmp) / f"tree-{arch}"
            stage(arch, version, pythons, own, wheel_dirs, tree)
            deb = out / f"edgecollect_{version}_{arch}.deb"
            # Wheels are zip files already: gzip -1 keeps the build fast for what little it saves.
            run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", str(tree), str(deb)])
            debs.append(deb)
    return debs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arch", default="amd64,arm64", help="comma-separated: amd64, arm64")
    parser.add_argument("--python", default="3.11", help="comma-separated CPython versions of the targets")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument(
        "--cache", type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecollect-deb",
    )
    args = parser.parse_args()
    arches = [a for a in args.arch.split(",") if a]
    unknown = [a for a in arches if a not in ARCHES]
    if unknown:
        parser.error(f"unknown architecture {unknown}; expected some of {sorted(ARCHES)}")
    if not shutil.which("dpkg-deb"):
        parser.error("dpkg-deb is missing: apt-get install dpkg (or run packaging/install-test-deps.sh)")
    pythons = [p for p in args.python.split(",") if p]
    for deb in build(arches, pythons, args.out, args.cache):
        print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
