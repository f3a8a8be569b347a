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
#   percli + plugins       Perses dashboard lint                     (Go module proxy; needs go >= 1.24)
set -eu

missing=""
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v dpkg-deb >/dev/null 2>&1 || missing="$missing dpkg"
command -v useradd >/dev/null 2>&1 || missing="$missing passwd"
command -v deb-systemd-helper >/dev/null 2>&1 || missing="$missing init-system-helpers"
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
command -v cc >/dev/null 2>&1 || missing="$missing gcc libc6-dev"

if [ -n "$missing" ]; then
    echo "install-test-deps: apt-get install$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

here=$(cd "$(dirname "$0")" && pwd)
"$here/perses/install-percli.sh" >/dev/null
echo "install-test-deps: ok"
