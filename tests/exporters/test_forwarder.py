"""Store-and-forward against the real Go sink: nothing lost, poison quarantined, fallbacks taken.

Each test spools numbered points into a real spool, runs the Forwarder thread against the sink
(tests/interop), and checks exactly which points the Go decoder saw: none missing, duplicates
counted and printed. Waits are bounded waits for conditions; no assertion depends on timing.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from edgecollect.exporters.otap import OtapExporter
from edgecollect.exporters.otap_encode import OtapStreamEncoder
from edgecollect.exporters.otlp_grpc import OtlpGrpcExporter
from edgecollect.exporters.proto import arrow_service_pb2 as pb
from edgecollect.exporters.upstream import UpstreamConfig
from edgecollect.statusmodel import Delivered
from edgecollect.telemetry import Telemetry
from tests.exporters.conftest import (
    Filler,
    assert_all_arrived,
    config,
    forwarding,
    log_bodies,
    metric_values,
)
from tests.support.ports import free_port
from tests.support.sink import BINARY_NO_GZIP, Sink, build_sink
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def counter(filler: Filler, noun: str) -> dict[str, int]:
    found = filler.telemetry.find(f"edgecollect.upstream.{noun}")
    return found.snapshot() if found is not None else {}


def max_rounds(elapsed: float, initial: float, cap: float) -> int:
    """Most attempts that fit in `elapsed` if every jittered backoff came out at its minimum."""
    rounds, spent = 1, 0.0
    while True:
        spent += min(cap, initial * 2 ** (rounds - 1)) / 2
        if spent > elapsed:
            return rounds
        rounds += 1


def spool_empty(filler: Filler) -> bool:
    return filler.spool.stats().files == 0


def test_store_and_forward_sink_down_then_up(make_sink: Any, filler: Filler, record_property: Any) -> None:
    for _ in range(30):
        filler.metrics(200)
    for _ in range(3):
        filler.logs(20)
    port = free_port()
    cfg = config(f"127.0.0.1:{port}", retry_initial=0.2, retry_max=1.0)
    started = time.monotonic()
    with forwarding(cfg, filler) as fwd:
        # Five seconds against a dead port: several capped, jittered backoff rounds.
        wait_until(lambda: sum(counter(filler, "retries").values()) >= 5, 30, "5 failed attempts")
        time.sleep(max(0.0, 5.0 - (time.monotonic() - started)))
        attempts = sum(counter(filler, "retries").values())
        elapsed = time.monotonic() - started
        # No busy loop: attempts are bounded by the shortest possible backoff schedule (a slower
        # machine only makes fewer), at most one failed batch per signal per round.
        bound = 2 * max_rounds(elapsed, cfg.retry_initial, cfg.retry_max)
        print(f"offline {elapsed:.1f}s: {attempts} failed attempts (bound {bound})")
        assert attempts <= bound
        st = fwd.status()
        assert st.state == "offline"
        assert "cannot connect" in st.last_error
        assert filler.spool.stats().files == 33, "nothing may leave the spool while the upstream is down"
        assert counter(filler, "batches_delivered") == {}

        sink = make_sink(grpc_port=port).start()
        wait_until(lambda: spool_empty(filler), 60, "the spool to drain after the sink came up")
        assert fwd.status().state == "connected"
    dups = assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "store-and-forward")
    record_property("duplicate_points", dups)
    assert sorted(log_bodies(sink.records("logs"))) == sorted(filler.log_bodies)
    assert counter(filler, "batches_delivered") == {"otap": 33}
    assert counter(filler, "retries").get("connect", 0) >= 1
    assert not list(filler.spool.quarantine_dir.iterdir())


def test_random_unavailable_loses_nothing(make_sink: Any, filler: Filler, record_property: Any) -> None:
    sink = make_sink(random_unavailable=0.3).start()
    for _ in range(40):
        filler.metrics(100)
    with forwarding(config(sink.grpc_address), filler):
        wait_until(lambda: spool_empty(filler), 60, "the spool to drain")
    assert sink.rejected("metrics"), "the sink should have refused some batches"
    assert counter(filler, "retries").get("unavailable", 0) >= 1
    dups = assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "random UNAVAILABLE")
    record_property("duplicate_points", dups)


def test_upstream_refusing_everything_keeps_the_spool(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(mode="unavailable").start()
    for _ in range(5):
        filler.metrics(20)
    with forwarding(config(sink.grpc_address), filler) as fwd:
        wait_until(lambda: counter(filler, "retries").get("unavailable", 0) >= 3, 30, "three refusals")
        assert fwd.status().state == "backoff"
        assert filler.spool.stats().files == 5 and counter(filler, "batches_delivered") == {}
        sink.set(mode="ok")
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain once the sink accepts")
        assert fwd.status().state == "connected"
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "refused, then accepted")


def test_invalid_argument_is_quarantined_and_the_rest_flows(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(reject_batch_containing="poison-pill").start()
    ids = [filler.metrics(50) for _ in range(4)]
    poison = filler.metrics(50, {"marker": "poison-pill"})
    ids += [filler.metrics(50) for _ in range(5)]
    with forwarding(config(sink.grpc_address), filler):
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
    quarantined = list(filler.spool.quarantine_dir.iterdir())
    assert len(quarantined) == 1 and "invalid_argument" in quarantined[0].name
    assert quarantined[0].name.endswith(f"{poison:016x}.ecb")
    assert counter(filler, "quarantined") == {"invalid_argument": 1}
    expected = [v for i in ids for v in filler.batch_values[i]]
    seen = metric_values(sink.records("metrics"))
    assert_all_arrived(expected, seen, "after a poison batch")
    assert not set(filler.batch_values[poison]) & set(seen)


def test_broken_streams_resend_unanswered_batches(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(drop_stream_after=3).start()
    for _ in range(30):
        filler.metrics(100)
    with forwarding(config(sink.grpc_address, max_in_flight=8), filler):
        wait_until(lambda: spool_empty(filler), 60, "the spool to drain")
    assert counter(filler, "retries").get("unavailable", 0) >= 1
    streams = {r["stream"] for r in sink.records("metrics")}
    assert len(streams) >= 10, "each stream takes at most 2 batches before the sink drops it"
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "drop_stream_after=3")


def test_arrow_unimplemented_falls_back_to_otlp_grpc(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(otlp_only=True).start()
    for _ in range(10):
        filler.metrics(100)
    filler.logs(5)
    with forwarding(config(sink.grpc_address), filler) as fwd:
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
        st = fwd.status()
    assert st.state == "fallback"
    assert st.modes == {"metrics": "otlp_grpc (fallback)", "logs": "otlp_grpc (fallback)"}
    assert counter(filler, "fallbacks") == {"unimplemented": 2}
    assert {r["via"] for r in sink.records()} == {"otlp_grpc"}
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "OTLP fallback")
    assert sorted(log_bodies(sink.records("logs"))) == sorted(filler.log_bodies)


def test_arrow_is_probed_again_after_a_fallback(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(otlp_only=True).start()
    filler.metrics(10)
    with forwarding(config(sink.grpc_address, arrow_reprobe_interval=1.0), filler) as fwd:
        wait_until(lambda: spool_empty(filler), 30, "the first batch via OTLP")
        sink.restart(otlp_only=False)

        def arrow_again() -> bool:
            # Keep data coming: the re-probe happens when a batch is sent after the interval.
            if spool_empty(filler):
                filler.metrics(10)
                fwd.notify()
            return bool(sink.records("metrics", via="otap"))

        wait_until(arrow_again, 30, "a batch via Arrow again")
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
        assert fwd.status().modes == {"metrics": "otap", "logs": "otap"}
    assert counter(filler, "arrow_reprobes").get("", 0) >= 1
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "re-probe")


@pytest.mark.parametrize("protocol", ["otap", "otlp_grpc"])
def test_a_server_without_gzip_gets_uncompressed_requests(
    filler: Filler, tmp_path: Path, protocol: str, caplog: pytest.LogCaptureFixture,
) -> None:
    """compression = "auto" sends gzip; a gRPC server without that codec answers UNIMPLEMENTED
    (grpc-go: "Decompressor is not installed"). That is no reason to leave Arrow, nor to back off:
    the exporter steps down to uncompressed requests on the same protocol and resends."""
    sink = Sink(tmp_path / "nogzip.jsonl", binary=build_sink(BINARY_NO_GZIP, tags=("nogzip",))).start()
    try:
        for _ in range(5):
            filler.metrics(100)
        filler.logs(3)
        with caplog.at_level(logging.WARNING), forwarding(config(sink.grpc_address, protocol=protocol), filler) as fwd:
            wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
            assert fwd.status().modes == {"metrics": protocol, "logs": protocol}
    finally:
        sink.stop()
    assert {r["via"] for r in sink.records()} == {protocol}
    assert counter(filler, "fallbacks") == {}
    assert any("uncompressed" in r.getMessage() for r in caplog.records)
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), f"{protocol} without gzip")
    assert sorted(log_bodies(sink.records("logs"))) == sorted(filler.log_bodies)


@pytest.mark.parametrize("protocol", ["otlp_grpc", "otlp_http"])
def test_plain_otlp_protocols(make_sink: Any, filler: Filler, protocol: str) -> None:
    sink = make_sink().start()
    for _ in range(5):
        filler.metrics(100)
    filler.logs(7)
    endpoint = sink.http_url if protocol == "otlp_http" else sink.grpc_address
    with forwarding(config(endpoint, protocol=protocol), filler) as fwd:
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
        assert fwd.status().state == "connected"
    assert {r["via"] for r in sink.records()} == {protocol}
    assert counter(filler, "batches_delivered") == {protocol: 6}
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), protocol)
    assert sorted(log_bodies(sink.records("logs"))) == sorted(filler.log_bodies)


def test_otlp_http_rejection_is_quarantined(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(reject_batch_containing="poison-pill").start()
    good = filler.metrics(20)
    filler.metrics(20, {"marker": "poison-pill"})
    with forwarding(config(sink.http_url, protocol="otlp_http"), filler):
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
    assert counter(filler, "quarantined") == {"http_4xx": 1}
    assert_all_arrived(filler.batch_values[good], metric_values(sink.records("metrics")), "http 400")


def test_otlp_http_unavailable_is_retried(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(random_unavailable=0.4).start()
    for _ in range(15):
        filler.metrics(20)
    with forwarding(config(sink.http_url, protocol="otlp_http"), filler):
        wait_until(lambda: spool_empty(filler), 60, "the spool to drain")
    assert counter(filler, "retries").get("http_5xx", 0) >= 1
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "http 503")


class CorruptingEncoder(OtapStreamEncoder):
    """A real encoder that garbles the data-point table of batches marked `corrupt-me`.

    It stands in for an encoder bug: the Go decoder fails, the receiver ends the stream INTERNAL.
    """

    def encode(self, batch: pa.RecordBatch) -> pb.BatchArrowRecords:
        bar = super().encode(batch)
        if any("corrupt-me" in str(s) for s in batch.column("attributes").dictionary.to_pylist()):
            for payload in bar.arrow_payloads:
                if payload.type == pb.NUMBER_DATA_POINTS:
                    payload.record = payload.record[: len(payload.record) // 2]
        return bar


def test_batch_that_kills_streams_goes_via_otlp(make_sink: Any, filler: Filler) -> None:
    sink = make_sink().start()
    before = [filler.metrics(30) for _ in range(3)]
    bad = filler.metrics(30, {"marker": "corrupt-me"})
    after = [filler.metrics(30) for _ in range(3)]

    def factory(cfg: UpstreamConfig, telemetry: Telemetry, wake: Any) -> OtapExporter:
        return OtapExporter(cfg, telemetry, wake, fallback=OtlpGrpcExporter,
                            encoder_factory=lambda s: CorruptingEncoder(s))

    with forwarding(config(sink.grpc_address, poison_threshold=3), filler, exporter_factory=factory):
        wait_until(lambda: spool_empty(filler), 60, "the spool to drain")
    decode_errors = [r for r in sink.rejected("metrics") if r["status"] == "INTERNAL"]
    assert len(decode_errors) == 3, "exactly poison_threshold streams die before the batch is rerouted"
    # One reroute, plus one more if the sink first refuses gzip (then OTLP goes uncompressed).
    assert 1 <= counter(filler, "fallbacks")["decode_error"] <= 2
    via_otlp = metric_values(sink.records("metrics", via="otlp_grpc"))
    assert set(via_otlp) == set(filler.batch_values[bad])
    good = [v for i in before + after for v in filler.batch_values[i]]
    assert_all_arrived(good + filler.batch_values[bad], metric_values(sink.records("metrics")), "poison")


def test_streams_are_recycled_with_acks_drained(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(ack_delay_ms=20).start()
    for _ in range(20):
        filler.metrics(250)
    # The rate cap makes the drain outlast one stream lifetime: 5000 points at 1000/s, 1 s burst.
    cfg = config(sink.grpc_address, max_stream_lifetime=1.0, rate_limit=1000.0)
    with forwarding(cfg, filler):
        wait_until(lambda: spool_empty(filler), 60, "the spool to drain")
    assert counter(filler, "streams").get("recycled", 0) >= 1
    assert len({r["stream"] for r in sink.records("metrics")}) >= 2
    assert not sink.rejected()
    # Half-closed streams were drained: every BAR on them got its status, none had to be resent.
    assert counter(filler, "retries") == {}
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "recycled streams")


def test_secret_headers_reach_the_sink_and_never_the_log(
    make_sink: Any, filler: Filler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    tmp_path: Any,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("EC_TEST_TOKEN", "Bearer s3cret-token")
    (tmp_path / "tenant").write_text("tenant-42\n")
    sink = make_sink().start()
    filler.metrics(10)
    headers = {"authorization": "env:EC_TEST_TOKEN", "X-Tenant": f"file:{tmp_path / 'tenant'}"}
    with forwarding(config(sink.grpc_address, headers=headers), filler):
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
    rec = sink.records("metrics")[0]
    assert rec["headers"]["authorization"] == "Bearer s3cret-token"
    assert rec["headers"]["x-tenant"] == "tenant-42"
    assert "s3cret" not in caplog.text


def test_missing_secret_is_reported_without_value(
    make_sink: Any, filler: Filler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("EC_MISSING_TOKEN", raising=False)
    sink = make_sink().start()
    filler.metrics(10)
    cfg = config(sink.grpc_address, headers={"authorization": "env:EC_MISSING_TOKEN"})
    with forwarding(cfg, filler) as fwd:
        wait_until(lambda: counter(filler, "retries").get("config", 0) >= 2, 30, "two failed attempts")
        st = fwd.status()
    assert st.state == "offline"
    assert "env:EC_MISSING_TOKEN" in st.last_error
    assert "env:EC_MISSING_TOKEN" in caplog.text
    assert filler.spool.stats().files == 1
    assert not sink.lines()


def test_otlp_mapping_decodes_like_otap(make_sink: Any, filler: Filler) -> None:
    """The same spooled batch via OTAP and via OTLP/gRPC: the Go side sees identical OTLP."""
    filler.metrics(200)
    filler.logs(5)
    sink = make_sink().start()
    with forwarding(config(sink.grpc_address), filler):
        wait_until(lambda: spool_empty(filler), 30, "OTAP delivery")
    second = Filler(filler.spool.directory.parent / "spool2")
    second.metrics(200)
    second.logs(5)
    with forwarding(config(sink.grpc_address, protocol="otlp_grpc"), second):
        wait_until(lambda: spool_empty(second), 30, "OTLP delivery")
    for signal in ("metrics", "logs"):
        otap = [r["data"] for r in sink.records(signal, via="otap")]
        otlp = [r["data"] for r in sink.records(signal, via="otlp_grpc")]
        assert len(otap) == len(otlp) == 1
        assert normalise(otap[0]) == normalise(otlp[0])


def normalise(data: Any) -> Any:
    """OTLP JSON with every list sorted, so table order (which OTAP may change) does not count."""
    if isinstance(data, dict):
        return {k: normalise(v) for k, v in data.items()}
    if isinstance(data, list):
        return sorted((normalise(v) for v in data), key=repr)
    return data




def test_unreadable_spooled_payload_is_quarantined(make_sink: Any, filler: Filler) -> None:
    sink = make_sink().start()
    junk = filler.spool.append("metrics", b"not an arrow stream", 3)
    good = filler.metrics(20)
    with forwarding(config(sink.grpc_address), filler):
        wait_until(lambda: spool_empty(filler), 30, "the spool to drain")
    (quarantined,) = filler.spool.quarantine_dir.iterdir()
    assert quarantined.name.endswith(f"{junk:016x}.ecb") and "unreadable_arrow" in quarantined.name
    assert counter(filler, "quarantined") == {"unreadable": 1}
    assert_all_arrived(filler.batch_values[good], metric_values(sink.records("metrics")), "after junk")


def test_new_batches_leave_at_once_after_notify(make_sink: Any, filler: Filler) -> None:
    sink = make_sink().start()
    with forwarding(config(sink.grpc_address), filler) as fwd:
        for _ in range(5):
            filler.metrics(10)
            fwd.notify()
            wait_until(lambda: spool_empty(filler), 30, "the new batch to be delivered")
        assert fwd.status().delivered == Delivered(batches=5, points=50)
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "notify")


def test_in_flight_window_is_bounded(make_sink: Any, filler: Filler) -> None:
    sink = make_sink(ack_delay_ms=200).start()
    for _ in range(12):
        filler.metrics(10)
    seen: list[int] = []
    with forwarding(config(sink.grpc_address, max_in_flight=3), filler) as fwd:

        def drained() -> bool:
            seen.append(fwd.status().in_flight)
            return spool_empty(filler)

        wait_until(drained, 60, "the spool to drain")
    assert max(seen) <= 3
    assert max(seen) > 1, "BARs are pipelined, not sent one at a time"
    assert_all_arrived(filler.values, metric_values(sink.records("metrics")), "window")


@pytest.mark.parametrize("protocol", ["otap", "otlp_grpc", "otlp_http"])
def test_rotated_token_file_is_picked_up(make_sink: Any, filler: Filler, tmp_path: Any, protocol: str) -> None:
    token = tmp_path / "token"
    token.write_text("Bearer one\n")
    sink = make_sink().start()
    endpoint = sink.http_url if protocol == "otlp_http" else sink.grpc_address
    cfg = config(endpoint, protocol=protocol, headers={"authorization": f"file:{token}"},
                 max_stream_lifetime=1.0)
    with forwarding(cfg, filler) as fwd:
        filler.metrics(5)
        fwd.notify()
        wait_until(lambda: spool_empty(filler), 30, "the first batch")
        token.write_text("Bearer two\n")

        def second_token_seen() -> bool:
            # Arrow streams carry the token they opened with; the next stream reads the file again.
            if spool_empty(filler):
                filler.metrics(5)
                fwd.notify()
            return any(r["headers"].get("authorization") == "Bearer two" for r in sink.records())

        wait_until(second_token_seen, 30, "a batch sent with the rotated token")
    assert sink.records()[0]["headers"]["authorization"] == "Bearer one"
