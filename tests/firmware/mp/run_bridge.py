# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: SIM115, UP031
# micropython run_bridge.py OUT_PATH CYCLES: the SLF/1 bridge with fake drivers, writing frames to
# OUT_PATH (a pty, or "-" for stdout). Prints nothing else on stdout when OUT_PATH is "-".
import sys
import time

import sensors
import slf1
from bridge import Bridge
from fakes import FakeDHT22, FakeDS18X20

path, cycles = sys.argv[1], int(sys.argv[2])
out = sys.stdout.buffer if path == "-" else open(path, "wb")
ds = FakeDS18X20({b"\x28\x01": 21.5, b"\x28\x02": -3.0625, b"\x28\x03": None})
adapters = [
    sensors.DS18B20(ds, [("ds0", b"\x28\x01"), ("ds1", b"\x28\x02"), ("ds2", b"\x28\x03")]),
    sensors.DHT22(FakeDHT22(22.3, 41.7, fail_every=3), "dht"),
]
slept = []
bridge = Bridge("mp-test-01", adapters, out, slf1.Uptime(time.ticks_ms, time.ticks_diff),
                lambda ms: slept.append(ms), interval_ms=1000)
bridge.run(cycles)
bridge.log("done, sleeps=%d" % len(slept), "I")
if path != "-":
    out.close()
