"""Synthetic batches for spool and batch tests."""

from __future__ import annotations

import random
from array import array

from edgecollect.batch import Rows, build_metrics, to_ipc
from edgecollect.buffer import FLAG_INT
from edgecollect.model import Resource, Series, SeriesRegistry, attrs

RESOURCE = Resource(attrs({"host.name": "test-gw", "service.name": "edgecollect"}))


def host_like_rows(
    registry: SeriesRegistry, points: int, seed: int = 1, t0_ns: int = 1_700_000_000_000_000_000
) -> Rows:
    """Points shaped like host metrics: 100 series, scraped together every 10 s."""
    rnd = random.Random(seed)
    ids = [
        registry.intern(Series("system.cpu.utilization", "1", "gauge", attrs({"cpu.logical_number": c})))
        for c in range(4)
    ] + [
        registry.intern(
            Series(
                "system.network.io",
                "By",
                "cumulative",
                attrs({"network.interface.name": f"eth{n}", "network.io.direction": d}),
            ),
            1,
        )
        for n in range(48)
        for d in ("receive", "transmit")
    ]
    sid, times, floats, ints, flags = array("I"), array("q"), array("d"), array("q"), array("B")
    counters = [0] * len(ids)
    for i in range(points):
        k = i % len(ids)
        sid.append(ids[k])
        times.append(t0_ns + (i // len(ids)) * 10_000_000_000)
        if k < 4:
            floats.append(round(rnd.random() * 0.3, 3))
            ints.append(0)
            flags.append(0)
        else:
            counters[k] += rnd.randint(0, 5000)
            floats.append(0.0)
            ints.append(counters[k])
            flags.append(FLAG_INT)
    return rows_of(sid, times, floats, ints, flags)


def rows_of(sid: array[int], times: array[int], floats: array[float], ints: array[int], flags: array[int]) -> Rows:
    return Rows(sid, times, floats, ints, flags)


def metrics_ipc(points: int, seed: int = 1) -> bytes:
    registry = SeriesRegistry()
    return to_ipc(build_metrics(host_like_rows(registry, points, seed), registry, RESOURCE, "boot"))
