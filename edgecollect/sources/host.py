"""Host metrics: psutil and /sys readers, one per metric group, OTel semantic-convention names.

Each reader returns points and never raises into the loop: a reader that fails (a missing /sys
file, a psutil error on an odd kernel) is counted under `edgecollect.host.reads{outcome}` and the
other groups go on. Paths under /sys are read relative to `root` so tests can use fixture trees. Its config
lives in hostconfig.py, so that loading a config does not import psutil.

Kinds follow the conventions: utilizations and temperatures are gauges, usages are non-monotonic
sums (`updown`), kernel counters (disk, network, CPU time) are cumulative sums starting at boot.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from edgecollect.model import AttrValue, Kind, Point, Series, attrs
from edgecollect.sources.base import SourceContext
from edgecollect.sources.hostconfig import HostConfig

# Filesystems that hold no user data; their usage is noise on a gateway.
PSEUDO_FS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "securityfs", "pstore",
    "debugfs", "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "bpf", "squashfs",
    "overlay", "nsfs", "ramfs", "binfmt_misc", "efivarfs", "rpc_pipefs",
})
VIRTUAL_DISK_PREFIXES = ("loop", "ram", "zram", "dm-", "sr")

# get_throttled bits (Raspberry Pi firmware): now (0-3) and since boot (16-19).
THROTTLE_BITS = {
    0: "under_voltage", 1: "arm_frequency_capped", 2: "throttled", 3: "soft_temperature_limit",
    16: "under_voltage_occurred", 17: "arm_frequency_capped_occurred", 18: "throttled_occurred",
    19: "soft_temperature_limit_occurred",
}
THROTTLED_PATHS = (
    "sys/devices/platform/soc/soc:firmware/get_throttled",
    "sys/devices/platform/soc/soc:firmware/raspberrypi-hwmon/get_throttled",
)


def _p(name: str, unit: str, kind: Kind, value: float | int, attributes: dict[str, AttrValue] | None = None,
       start_ns: int | None = None) -> Point:
    return Point(Series(name, unit, kind, attrs(attributes)), value, start_time_ns=start_ns)


def read_cpu(per_cpu: bool) -> list[Point]:
    out = [_p("system.cpu.utilization", "1", "gauge", psutil.cpu_percent(None) / 100.0)]
    if per_cpu:
        for i, pct in enumerate(psutil.cpu_percent(None, percpu=True)):
            out.append(_p("system.cpu.utilization", "1", "gauge", pct / 100.0, {"cpu.logical_number": i}))
    try:
        for i, window in enumerate(psutil.getloadavg()):
            out.append(_p(f"system.cpu.load_average.{(1, 5, 15)[i]}m", "{thread}", "gauge", window))
    except OSError:
        pass
    return out


def read_memory() -> list[Point]:
    vm = psutil.virtual_memory()
    states = {"used": vm.used, "free": vm.free}
    for state in ("cached", "buffers"):
        if hasattr(vm, state):
            states[state] = getattr(vm, state)
    out = [_p("system.memory.usage", "By", "updown", v, {"system.memory.state": s}) for s, v in states.items()]
    out += [
        _p("system.memory.utilization", "1", "gauge", v / vm.total, {"system.memory.state": s})
        for s, v in states.items() if vm.total
    ]
    out.append(_p("system.memory.limit", "By", "updown", vm.total))
    sw = psutil.swap_memory()
    for state, v in (("used", sw.used), ("free", sw.free)):
        out.append(_p("system.paging.usage", "By", "updown", v, {"system.paging.state": state}))
    return out


def read_filesystems() -> list[Point]:
    out: list[Point] = []
    for part in psutil.disk_partitions(all=False):
        if part.fstype in PSEUDO_FS or not part.fstype:
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue  # unmounted between the two calls, or no permission
        base: dict[str, AttrValue] = {
            "system.filesystem.mountpoint": part.mountpoint,
            "system.device": part.device,
            "system.filesystem.type": part.fstype,
        }
        reserved = max(usage.total - usage.used - usage.free, 0)
        for state, v in (("used", usage.used), ("free", usage.free), ("reserved", reserved)):
            state_attrs: dict[str, AttrValue] = {**base, "system.filesystem.state": state}
            out.append(_p("system.filesystem.usage", "By", "updown", v, state_attrs))
        out.append(_p("system.filesystem.utilization", "1", "gauge", usage.percent / 100.0, base))
    return out


def read_disks(boot_ns: int) -> list[Point]:
    out: list[Point] = []
    for dev, io in (psutil.disk_io_counters(perdisk=True) or {}).items():
        if dev.startswith(VIRTUAL_DISK_PREFIXES):
            continue
        directions = (("read", io.read_bytes, io.read_count), ("write", io.write_bytes, io.write_count))
        for direction, nbytes, ops in directions:
            a: dict[str, AttrValue] = {"system.device": dev, "disk.io.direction": direction}
            out.append(_p("system.disk.io", "By", "cumulative", nbytes, a, boot_ns))
            out.append(_p("system.disk.operations", "{operation}", "cumulative", ops, a, boot_ns))
    return out


def read_network(boot_ns: int) -> list[Point]:
    out: list[Point] = []
    for nic, io in psutil.net_io_counters(pernic=True).items():
        if nic == "lo":
            continue
        for direction, nbytes, errs, drops in (
            ("receive", io.bytes_recv, io.errin, io.dropin),
            ("transmit", io.bytes_sent, io.errout, io.dropout),
        ):
            a: dict[str, AttrValue] = {"network.interface.name": nic, "network.io.direction": direction}
            out.append(_p("system.network.io", "By", "cumulative", nbytes, a, boot_ns))
            out.append(_p("system.network.errors", "{error}", "cumulative", errs, a, boot_ns))
            out.append(_p("system.network.dropped", "{packet}", "cumulative", drops, a, boot_ns))
    return out


def read_temperatures(root: Path) -> list[Point]:
    out: list[Point] = []
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        sensors = {}
    for chip, entries in sensors.items():
        for i, entry in enumerate(entries):
            label = entry.label or str(i)
            out.append(_p("hw.temperature", "Cel", "gauge", entry.current,
                          {"hw.id": f"{chip}.{label}", "hw.type": "temperature"}))
    thermal = root / "sys/class/thermal"
    for zone in sorted(thermal.glob("thermal_zone*")):
        try:
            millideg = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            zone_type = (zone / "type").read_text().strip()
        except OSError:
            zone_type = zone.name
        out.append(_p("hw.temperature", "Cel", "gauge", millideg / 1000.0,
                      {"hw.id": zone.name, "hw.name": zone_type, "hw.type": "temperature"}))
    return out


def read_throttling(root: Path) -> list[Point]:
    """Raspberry Pi under-voltage and throttling flags, where the firmware exposes them."""
    for rel in THROTTLED_PATHS:
        path = root / rel
        if not path.exists():
            continue
        try:
            value = int(path.read_text().strip(), 16)
        except (OSError, ValueError):
            return []
        return [_p("hw.rpi.throttled", "1", "gauge", (value >> bit) & 1, {"hw.rpi.flag": name})
                for bit, name in THROTTLE_BITS.items()]
    return []


def read_uptime(boot_s: float) -> list[Point]:
    return [_p("system.uptime", "s", "gauge", time.time() - boot_s)]


def read_self(proc: psutil.Process, start_ns: int) -> list[Point]:
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_times()
    return [
        _p("process.memory.usage", "By", "updown", rss),
        _p("process.cpu.time", "s", "cumulative", cpu.user, {"cpu.mode": "user"}, start_ns),
        _p("process.cpu.time", "s", "cumulative", cpu.system, {"cpu.mode": "system"}, start_ns),
    ]


class HostSource:
    name = "host"

    def __init__(self, cfg: HostConfig, ctx: SourceContext) -> None:
        self._cfg = cfg
        self._ctx = ctx
        self._reads = ctx.counter("reads", "outcome")
        root = Path(cfg.root)
        boot_s = psutil.boot_time()
        boot_ns = int(boot_s * 1e9)
        proc = psutil.Process(os.getpid())
        start_ns = int(proc.create_time() * 1e9)
        self._readers: dict[str, Callable[[], list[Point]]] = {
            "cpu": lambda: read_cpu(cfg.per_cpu),
            "memory": read_memory,
            "filesystem": read_filesystems,
            "disk": lambda: read_disks(boot_ns),
            "network": lambda: read_network(boot_ns),
            "temperature": lambda: read_temperatures(root),
            "throttling": lambda: read_throttling(root),
            "uptime": lambda: read_uptime(boot_s),
            "process": lambda: read_self(proc, start_ns),
        }
        psutil.cpu_percent(None)  # the first call only primes the counters
        psutil.cpu_percent(None, percpu=True)

    def collect(self) -> list[Point]:
        points: list[Point] = []
        for group, reader in self._readers.items():
            try:
                points.extend(reader())
                self._reads.inc("ok")
            except Exception:  # noqa: BLE001 - one broken reader must not stop the others
                self._reads.inc(f"error_{group}")
        return points

    def run(self) -> None:
        # The first utilisation sample needs an interval behind it, so sampling starts one tick in.
        next_at = time.monotonic() + min(self._cfg.interval, 1.0)
        while not self._ctx.wait(max(0.0, next_at - time.monotonic())):
            self._ctx.emit(self.collect())
            next_at += self._cfg.interval
            now = time.monotonic()
            if next_at < now:  # we fell behind (suspend, overload): skip, don't burst
                next_at = now + self._cfg.interval
