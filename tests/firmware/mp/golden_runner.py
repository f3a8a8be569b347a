# MicroPython code: no contextlib, and %-formatting is the cheap idiom there.
# ruff: noqa: SIM108, SIM115
# Run under the MicroPython unix port: encode every golden vector with the bridge's slf1.py and
# write the frames to stdout, one after another, byte for byte.
import json
import sys

import slf1

doc = json.load(open(sys.argv[1]))
out = sys.stdout.buffer
for v in doc["frames"]:
    if v["kind"] == "D":
        fields = [(k, m, d) for k, m, d in v["fixed"]]
    else:
        fields = [(k, t) for k, t in v["fields"]]
    out.write(slf1.encode(v["kind"], v["device_id"], v["seq"], v["uptime_ms"], fields))
out.write(b"%04X\n" % slf1.crc16(doc["crc_check"]["input"].encode()))
