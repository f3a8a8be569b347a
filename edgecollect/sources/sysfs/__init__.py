"""The Pi's own buses through the kernel: 1-Wire w1_therm, IIO and hwmon, read from /sys.

`SysfsConfig` (config.py, stdlib only) is the `[sources.sysfs]` table with the cheap probe;
readers.py parses the files (pure: root in, outcomes and points out); source.py is the loop,
imported only when the probe (or `enabled = "on"`) says so.
"""

from edgecollect.sources.sysfs.config import SysfsConfig, present

__all__ = ["SysfsConfig", "present"]
