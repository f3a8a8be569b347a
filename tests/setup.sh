#!/usr/bin/env bash
# Everything the test suite needs on a fresh Debian-like machine, idempotent.
# Called by the README's test command (and so by .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# The broker is started by the test fixtures on a free port, never as a system service.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi

python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"

# Firmware bridges and packaging tests bring their own toolchains (gcc-avr, MicroPython, systemd).
for extra in tests/firmware/install-deps.sh packaging/install-test-deps.sh; do
  if [ -f "$extra" ]; then bash "$extra"; fi
done

# The reference OTel-Arrow sink (Go, from the Go module proxy); built once, reused by fixtures.
python3 -c "from tests.support.sink import BINARY_NO_GZIP, build_sink; build_sink(); build_sink(BINARY_NO_GZIP, tags=('nogzip',))"

# The reference OpAMP server (opamp-go's server package) for tests/opamp; rebuilt only when its sources change.
python3 -c "from tests.interop.opamp_server import build; build()"

# The gateway Collector (packaging/gateway/, OpenTelemetry Collector builder, Go module proxy) for
# tests/gateway; cached under $HOME/.cache/edgecollect/gateway/ by manifest hash (first build: minutes).
bash packaging/gateway/build.sh >/dev/null
