"""An idle gRPC connection is closed after `close_idle_after` (grpc's threads end with the channel)
and opened again for the next batch, with nothing lost: the real Go sink, both gRPC protocols."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from edgecollect.exporters.contracts import Exporter
from edgecollect.exporters.registry import make_exporter
from edgecollect.exporters.upstream import UpstreamConfig
from edgecollect.telemetry import Telemetry
from tests.exporters.conftest import Filler, assert_all_arrived, config, forwarding, metric_values
from tests.exporters.test_forwarder import counter, spool_empty
from tests.support.wait import wait_until


def recording_factory(made: list[Any]) -> Any:
    def factory(cfg: UpstreamConfig, telemetry: Telemetry, wake: Any) -> Exporter:
        exporter = make_exporter(cfg, telemetry, wake)
        made.append(exporter)
        return exporter
    return factory


@pytest.mark.parametrize("protocol", ["otap", "otlp_grpc"])
def test_an_idle_connection_is_closed_and_reopened_for_the_next_batch(
    make_sink: Any, filler: Filler, protocol: str,
) -> None:
    sink = make_sink().start()
    for _ in range(3):
        filler.metrics(40)
    made: list[Any] = []
    cfg = config(sink.grpc_address, protocol=protocol, close_idle_after=0.5)
    with forwarding(cfg, filler, exporter_factory=recording_factory(made)) as fwd:
        channel = made[0].channel
        wait_until(lambda: spool_empty(filler), 30, "the first batches to be acknowledged")
        wait_until(lambda: not channel.is_open, 30, "the idle channel to be closed")
        if protocol == "otap":
            assert counter(filler, "streams").get("closed_idle", 0) >= 1
        assert channel.opened == 1
        for _ in range(2):
            filler.metrics(40)
        fwd.notify()
        wait_until(lambda: spool_empty(filler), 30, "the later batches to be acknowledged")
        assert channel.opened == 2
        wait_until(lambda: not channel.is_open, 30, "the channel to be closed again")
        assert fwd.status().modes == {"metrics": protocol, "logs": protocol}
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "idle close")


def test_a_connection_in_use_is_kept(make_sink: Any, filler: Filler) -> None:
    """Batches every 0.2 s for 6 s with close_idle_after = 3 s: one channel and one stream carry them all."""
    sink = make_sink().start()
    made: list[Any] = []
    done = threading.Event()
    with forwarding(config(sink.grpc_address, close_idle_after=3.0), filler,
                    exporter_factory=recording_factory(made)) as fwd:
        for _ in range(30):
            filler.metrics(20)
            fwd.notify()
            done.wait(0.2)
        wait_until(lambda: spool_empty(filler), 30, "every batch to be acknowledged")
        assert made[0].channel.opened == 1
    assert counter(filler, "streams").get("opened", 0) == 1
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "kept connection")
