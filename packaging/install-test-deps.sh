#!/bin/sh
# What tests/packaging/, tests/test_timesync.py and tests/test_sdnotify.py need beyond the Python test
# extras (pyproject.toml). Idempotent: installs only what is missing, and the percli build is cached.
#
#   systemd-analyze        security + verify of the unit            (apt: systemd)
#   dpkg-deb, dpkg         building and installing the .deb          (apt: dpkg, always present)
#   useradd, userdel       the maintainer scripts, in a DPKG_ROOT    (apt: passwd)
#   deb-systemd-helper     the maintainer scripts                    (apt: init-system-helpers)
#   /usr/bin/python3 venv  make-venv builds the venv with it         (apt: python3-venv)
#   cc                     adjtimex struct cross-check               (apt: gcc libc6-dev)
#   qemu-aarch64-static    the arm64 package on an aarch64 python    (apt: qemu-user-static)
#   strace                 the agent's syscalls vs the unit's filter (apt: strace)
#   python3 seccomp        the agent under the unit's seccomp filter (apt: python3-seccomp)
#   losetup, mkfs.ext4     SD-card write measurement                 (apt: mount, e2fsprogs)
#   Debian arm64 python    sysroot for that test: python3.11 + libs  (apt-get download, arch arm64)
#   percli + plugins       Perses dashboard lint                     (Go module proxy; needs go >= 1.24)
set -eu

missing=""
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v dpkg-deb >/dev/null 2>&1 || missing="$missing dpkg"
command -v useradd >/dev/null 2>&1 || missing="$missing passwd"
command -v deb-systemd-helper >/dev/null 2>&1 || missing="$missing init-system-helpers"
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
command -v cc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"
command -v qemu-aarch64-static >/dev/null 2>&1 || missing="$missing qemu-user-static"
command -v strace >/dev/null 2>&1 || missing="$missing strace"
/usr/bin/python3 -c 'import seccomp' >/dev/null 2>&1 || missing="$missing python3-seccomp"
command -v losetup >/dev/null 2>&1 || missing="$missing mount"
command -v mkfs.ext4 >/dev/null 2>&1 || missing="$missing e2fsprogs"

if [ -n "$missing" ]; then
    echo "install-test-deps: apt-get install$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

# Debian 12's own arm64 CPython and what it links, unpacked later into a sysroot by
# tests/packaging/test_arm64.py (downloaded once, cached outside the repository).
arm64_debs="${XDG_CACHE_HOME:-$HOME/.cache}/edgecollect-deb/arm64-sysroot-debs"
if ! ls "$arm64_debs"/python3.11-minimal_*_arm64.deb >/dev/null 2>&1; then
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        dpkg --add-architecture arm64
    fi
    apt-get update -qq
    mkdir -p "$arm64_debs"
    (cd "$arm64_debs" && apt-get download -qq \
        libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 libbz2-1.0:arm64 libcrypt1:arm64 libexpat1:arm64 \
        libffi8:arm64 liblzma5:arm64 libncursesw6:arm64 libtinfo6:arm64 libnsl2:arm64 libtirpc3:arm64 \
        libgssapi-krb5-2:arm64 libk5crypto3:arm64 libkrb5-3:arm64 libkrb5support0:arm64 \
        libkeyutils1:arm64 libcom-err2:arm64 libreadline8:arm64 libsqlite3-0:arm64 libssl3:arm64 \
        libuuid1:arm64 zlib1g:arm64 libdb5.3:arm64 libpython3.11-minimal:arm64 \
        libpython3.11-stdlib:arm64 python3.11-minimal:arm64 python3.11:arm64 python3.11-venv:arm64 \
        python3-pip-whl python3-setuptools-whl)
fi

here=$(cd "$(dirname "$0")" && pwd)
"$here/perses/install-percli.sh" >/dev/null
echo "install-test-deps: ok"
