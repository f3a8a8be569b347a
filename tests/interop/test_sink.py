"""End-to-end checks of the Go reference sink, driven from Python without edgecollect's encoder.

OTLP requests are built with the ``opentelemetry-proto`` package. Arrow (OTAP) batches come
from the sink's own ``produce`` subcommand (the real Go Producer) or are hand-made
protobuf bytes, and travel over a raw ``stream_stream`` gRPC call.
"""

from __future__ import annotations

import base64
import gzip
import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from tests.support.sink import Record, Sink, SinkError, sink_binary

pytestmark = pytest.mark.integration

ARROW_METRICS = "/opentelemetry.proto.experimental.arrow.v1.ArrowMetricsService/ArrowMetrics"
ARROW_LOGS = "/opentelemetry.proto.experimental.arrow.v1.ArrowLogsService/ArrowLogs"
T0 = 1_700_000_000_000_000_000


# -- request builders ----------------------------------------------------


def _kv(key: str, value: str) -> Any:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def metrics_request(values: Sequence[float] = (0.42, 0.17), host: str = "pi4") -> Any:
    """``cpu.utilization`` gauge, one point per value (attribute cpu=index), plus a cumulative sum."""
    points = [
        metrics_pb2.NumberDataPoint(time_unix_nano=T0, as_double=v, attributes=[_kv("cpu", str(i))])
        for i, v in enumerate(values)
    ]
    gauge = metrics_pb2.Metric(name="cpu.utilization", unit="1", gauge=metrics_pb2.Gauge(data_points=points))
    counter = metrics_pb2.Metric(
        name="system.network.io",
        unit="By",
        sum=metrics_pb2.Sum(
            data_points=[
                metrics_pb2.NumberDataPoint(start_time_unix_nano=T0 - 10**9, time_unix_nano=T0, as_int=1234)
            ],
            aggregation_temporality=metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE,
            is_monotonic=True,
        ),
    )
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource_pb2.Resource(attributes=[_kv("host.name", host)]),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=common_pb2.InstrumentationScope(name="edge-agent"), metrics=[gauge, counter]
                    )
                ],
            )
        ]
    )


def logs_request(body: str = "serial: checksum mismatch") -> Any:
    record = logs_pb2.LogRecord(
        time_unix_nano=T0,
        severity_number=logs_pb2.SEVERITY_NUMBER_WARN,
        severity_text="WARN",
        body=common_pb2.AnyValue(string_value=body),
        attributes=[_kv("port", "/dev/ttyUSB0")],
    )
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(attributes=[_kv("host.name", "pi4")]),
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        scope=common_pb2.InstrumentationScope(name="edge-agent"), log_records=[record]
                    )
                ],
            )
        ]
    )


def metrics_stub(channel: grpc.Channel) -> Any:
    return metrics_service_pb2_grpc.MetricsServiceStub(channel)  # type: ignore[no-untyped-call]


def logs_stub(channel: grpc.Channel) -> Any:
    return logs_service_pb2_grpc.LogsServiceStub(channel)  # type: ignore[no-untyped-call]


def as_metrics_request(record: Record) -> Any:
    """Parse a sink record's ``data`` (pmetric JSON) back into a protobuf request."""
    msg = metrics_service_pb2.ExportMetricsServiceRequest()
    json_format.ParseDict(record["data"], msg, ignore_unknown_fields=True)
    return msg


def as_logs_request(record: Record) -> Any:
    msg = logs_service_pb2.ExportLogsServiceRequest()
    json_format.ParseDict(record["data"], msg, ignore_unknown_fields=True)
    return msg


# -- minimal protobuf codec for the Arrow messages -------------------------


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def hand_made_bar(batch_id: int, payload_type: int, record: bytes, schema_id: str = "0") -> bytes:
    """A BatchArrowRecords with one payload, encoded by hand."""
    payload = _field(1, schema_id.encode()) + _varint(2 << 3) + _varint(payload_type) + _field(3, record)
    return _varint(1 << 3) + _varint(batch_id) + _field(2, payload)


def parse_batch_status(raw: bytes) -> tuple[int, int, str]:
    """(batch_id, status_code, status_message) from BatchStatus bytes."""
    fields: dict[int, int | bytes] = {}
    i = 0

    def read_varint() -> int:
        nonlocal i
        shift = result = 0
        while True:
            b = raw[i]
            i += 1
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result

    while i < len(raw):
        key = read_varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            fields[num] = read_varint()
        elif wire == 2:
            size = read_varint()
            fields[num] = raw[i : i + size]
            i += size
        else:
            raise ValueError(f"unexpected wire type {wire}")
    batch_id = fields.get(1, 0)
    code = fields.get(2, 0)
    msg = fields.get(3, b"")
    assert isinstance(batch_id, int) and isinstance(code, int) and isinstance(msg, bytes)
    if batch_id >= 1 << 63:
        batch_id -= 1 << 64
    return batch_id, code, msg.decode()


def produce_bars(tmp_path: Path, requests: Sequence[Any], signal: str = "metrics") -> list[bytes]:
    """Encode requests with one Go Producer (one stream's worth of BARs)."""
    src = tmp_path / f"{signal}-requests.jsonl"
    src.write_text("".join(json_format.MessageToJson(r, indent=None) + "\n" for r in requests))
    proc = subprocess.run(
        [str(sink_binary()), "produce", "-signal", signal, "-with-bar", str(src)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    bars = []
    for text in proc.stdout.splitlines():
        line: dict[str, Any] = json.loads(text)
        assert line["bar_bytes"] > 0 and line["points"] > 0
        bars.append(base64.b64decode(line["bar"]))
    assert len(bars) == len(requests)
    return bars


def arrow_stream(
    channel: grpc.Channel, method: str, bars: Sequence[bytes], metadata: Sequence[tuple[str, str]] = ()
) -> tuple[list[tuple[int, int, str]], grpc.RpcError | None]:
    """Send all BARs on one stream and collect the statuses, plus the RPC error if it failed."""
    call = channel.stream_stream(method)
    statuses: list[tuple[int, int, str]] = []
    responses: Iterator[bytes] = call(iter(bars), metadata=tuple(metadata), timeout=20)
    try:
        for raw in responses:
            statuses.append(parse_batch_status(raw))
    except grpc.RpcError as exc:
        return statuses, exc
    return statuses, None


# -- fixtures --------------------------------------------------------------


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    s = Sink(tmp_path / "sink.jsonl", binary=sink_binary())
    with s:
        yield s


@pytest.fixture
def channel(sink: Sink) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(sink.grpc_address) as ch:
        yield ch


def post(
    url: str, body: bytes, *, gzip_body: bool = False, context: ssl.SSLContext | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/x-protobuf", "Authorization": "Bearer http-token"}
    if gzip_body:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- OTLP ------------------------------------------------------------------


def test_otlp_grpc_metrics_arrive_with_values_and_headers(sink: Sink, channel: grpc.Channel) -> None:
    req = metrics_request()
    stub = metrics_stub(channel)
    stub.Export(req, metadata=(("authorization", "Bearer s3cret"),), timeout=10)

    [rec] = sink.wait_for_records(1)
    assert rec["signal"] == "metrics" and rec["via"] == "otlp_grpc"
    assert rec["batch_id"] == -1 and rec["payload_types"] == []
    assert rec["bytes"] == req.ByteSize()
    assert rec["headers"]["authorization"] == "Bearer s3cret"
    assert as_metrics_request(rec) == req
    gauge = rec["data"]["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]
    assert gauge["name"] == "cpu.utilization"
    assert [p["asDouble"] for p in gauge["gauge"]["dataPoints"]] == [0.42, 0.17]
    assert sink.rejected() == []


def test_otlp_grpc_logs_arrive(sink: Sink, channel: grpc.Channel) -> None:
    req = logs_request()
    logs_stub(channel).Export(req, timeout=10)
    [rec] = sink.wait_for_records(1, signal="logs")
    assert rec["via"] == "otlp_grpc"
    assert as_logs_request(rec) == req


def test_otlp_http_gzip_and_plain(sink: Sink) -> None:
    req = metrics_request(values=(1.5,))
    status, body = post(f"{sink.http_url}/v1/metrics", req.SerializeToString(), gzip_body=True)
    assert status == 200
    metrics_service_pb2.ExportMetricsServiceResponse.FromString(body)  # well-formed response

    logs = logs_request()
    status, body = post(f"{sink.http_url}/v1/logs", logs.SerializeToString())
    assert status == 200
    logs_service_pb2.ExportLogsServiceResponse.FromString(body)

    recs = sink.wait_for_records(2, via="otlp_http")
    assert [r["signal"] for r in recs] == ["metrics", "logs"]
    assert as_metrics_request(recs[0]) == req
    assert as_logs_request(recs[1]) == logs
    assert recs[0]["bytes"] == req.ByteSize()
    assert recs[0]["headers"]["authorization"] == "Bearer http-token"
    assert recs[0]["headers"]["content-encoding"] == "gzip"


def test_otlp_http_garbage_is_400_and_counted(sink: Sink) -> None:
    status, _ = post(f"{sink.http_url}/v1/metrics", b"\xff\xff\xff not protobuf")
    assert status == 400
    [rej] = sink.wait_for(lambda lines: len(lines) == 1)
    assert rej["rejected"] is True and rej["status"] == "INVALID_ARGUMENT"


def test_mode_unavailable(tmp_path: Path) -> None:
    with Sink(tmp_path / "s.jsonl", mode="unavailable", binary=sink_binary()) as s:
        with grpc.insecure_channel(s.grpc_address) as ch:
            stub = metrics_stub(ch)
            with pytest.raises(grpc.RpcError) as err:
                stub.Export(metrics_request(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        status, _ = post(f"{s.http_url}/v1/metrics", metrics_request().SerializeToString())
        assert status == 503
        rejected = s.wait_for(lambda lines: len(lines) == 2)
        assert [r["status"] for r in rejected] == ["UNAVAILABLE", "UNAVAILABLE"]
        assert all(r["rejected"] for r in rejected)
        assert s.records() == []


def test_control_endpoint(sink: Sink, channel: grpc.Channel) -> None:
    assert sink.settings()["mode"] == "ok"
    stub = metrics_stub(channel)

    now = sink.set(mode="invalid_argument", ack_delay_ms=1)
    assert now["mode"] == "invalid_argument" and now["ack_delay_ms"] == 1
    with pytest.raises(grpc.RpcError) as err:
        stub.Export(metrics_request(), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert post(f"{sink.http_url}/v1/metrics", metrics_request().SerializeToString())[0] == 400

    sink.set(mode="ok", reject_batch_containing="poison-host")
    stub.Export(metrics_request(host="good-host"), timeout=10)
    with pytest.raises(grpc.RpcError) as err:
        stub.Export(metrics_request(host="poison-host"), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    with pytest.raises(SinkError):
        sink.set(mode="no-such-mode")
    with pytest.raises(SinkError):
        sink.set(random_unavailable=2.0)
    with pytest.raises(TypeError):
        sink.set(otlp_only=True)
    assert sink.settings()["reject_batch_containing"] == "poison-host"

    recs = sink.records()
    assert len(recs) == 1 and "good-host" in json.dumps(recs[0]["data"])
    assert [r["status"] for r in sink.rejected()] == ["INVALID_ARGUMENT"] * 3


def test_random_unavailable_is_seeded(tmp_path: Path) -> None:
    outcomes = []
    for run in range(2):
        with Sink(tmp_path / f"r{run}.jsonl", random_unavailable=0.5, seed=7, binary=sink_binary()) as s:
            for _ in range(20):
                post(f"{s.http_url}/v1/metrics", metrics_request().SerializeToString())
            outcomes.append([r["rejected"] for r in s.lines()])
    assert outcomes[0] == outcomes[1]
    assert 0 < sum(outcomes[0]) < 20


# -- Arrow -------------------------------------------------------------------


def test_otlp_only_makes_arrow_unimplemented(tmp_path: Path) -> None:
    with Sink(tmp_path / "s.jsonl", otlp_only=True, binary=sink_binary()) as s:
        with grpc.insecure_channel(s.grpc_address) as ch:
            bar = hand_made_bar(0, 10, b"")
            for method in (ARROW_METRICS, ARROW_LOGS):
                statuses, err = arrow_stream(ch, method, [bar])
                assert statuses == [] and err is not None
                assert err.code() == grpc.StatusCode.UNIMPLEMENTED
            # plain OTLP still works
            metrics_stub(ch).Export(metrics_request(), timeout=10)
        assert len(s.wait_for_records(1)) == 1
        assert s.settings()["otlp_only"] is True


def test_mode_unimplemented_at_run_time(sink: Sink, channel: grpc.Channel) -> None:
    sink.set(mode="unimplemented")
    _, err = arrow_stream(channel, ARROW_METRICS, [hand_made_bar(0, 10, b"")])
    assert err is not None and err.code() == grpc.StatusCode.UNIMPLEMENTED
    metrics_stub(channel).Export(metrics_request(), timeout=10)
    assert sink.wait_for_records(1)[0]["via"] == "otlp_grpc"


def test_arrow_metrics_stream_decodes_go_produced_bars(
    tmp_path: Path, sink: Sink, channel: grpc.Channel
) -> None:
    reqs = [metrics_request(), metrics_request(values=(0.5, 0.25, 0.125))]
    bars = produce_bars(tmp_path, reqs)
    statuses, err = arrow_stream(channel, ARROW_METRICS, bars, metadata=[("authorization", "Bearer arrow")])
    assert err is None
    assert sorted(statuses) == [(0, 0, ""), (1, 0, "")]

    recs = sink.wait_for_records(2)
    assert [r["batch_id"] for r in recs] == [0, 1]
    assert all(r["via"] == "otap" and r["signal"] == "metrics" for r in recs)
    assert recs[0]["stream"] == recs[1]["stream"] > 0
    assert recs[0]["payload_types"][0] == "UNIVARIATE_METRICS"
    assert "NUMBER_DATA_POINTS" in recs[0]["payload_types"]
    assert [r["bytes"] for r in recs] == [len(b) for b in bars]
    assert recs[0]["headers"]["authorization"] == "Bearer arrow"
    assert [as_metrics_request(r) for r in recs] == reqs

    # A second stream starts from scratch: new stream number, fresh consumer.
    statuses, err = arrow_stream(channel, ARROW_METRICS, produce_bars(tmp_path, reqs[:1]))
    assert err is None and statuses == [(0, 0, "")]
    assert sink.wait_for_records(3)[2]["stream"] > recs[0]["stream"]


def test_arrow_logs_stream(tmp_path: Path, sink: Sink, channel: grpc.Channel) -> None:
    req = logs_request()
    statuses, err = arrow_stream(channel, ARROW_LOGS, produce_bars(tmp_path, [req], signal="logs"))
    assert err is None and statuses == [(0, 0, "")]
    [rec] = sink.wait_for_records(1, signal="logs")
    assert rec["via"] == "otap" and rec["payload_types"][0] == "LOGS"
    assert as_logs_request(rec) == req


def test_arrow_poison_batch_and_drop_stream(tmp_path: Path, sink: Sink, channel: grpc.Channel) -> None:
    reqs = [metrics_request(host=h) for h in ("a-host", "poison-host", "c-host")]
    bars = produce_bars(tmp_path, reqs)

    sink.set(reject_batch_containing="poison-host")
    statuses, err = arrow_stream(channel, ARROW_METRICS, bars)
    assert err is None
    assert sorted(s[:2] for s in statuses) == [(0, 0), (1, 3), (2, 0)]  # 3 = INVALID_ARGUMENT
    assert [r["batch_id"] for r in sink.records()] == [0, 2]

    sink.set(reject_batch_containing="", drop_stream_after=2, ack_delay_ms=50)
    statuses, err = arrow_stream(channel, ARROW_METRICS, bars)
    assert statuses == [(0, 0, "")]  # the 2nd BAR is never answered, the 1st still is
    assert err is not None and err.code() == grpc.StatusCode.UNAVAILABLE
    dropped = sink.rejected()[-1]
    assert dropped["batch_id"] == 1 and dropped["status"] == "UNAVAILABLE"


def test_arrow_decode_error_ends_stream_with_internal(sink: Sink, channel: grpc.Channel) -> None:
    statuses, err = arrow_stream(channel, ARROW_METRICS, [hand_made_bar(0, 10, b"not arrow ipc at all")])
    assert statuses == []
    assert err is not None and err.code() == grpc.StatusCode.INTERNAL
    assert "otel-arrow decode" in (err.details() or "")
    [rej] = sink.rejected()
    assert rej["status"] == "INTERNAL" and rej["payload_types"] == ["UNIVARIATE_METRICS"]


def test_arrow_unavailable_mode_answers_each_batch(tmp_path: Path, sink: Sink, channel: grpc.Channel) -> None:
    sink.set(mode="unavailable")
    statuses, err = arrow_stream(channel, ARROW_METRICS, produce_bars(tmp_path, [metrics_request()] * 2))
    assert err is None
    assert sorted(s[:2] for s in statuses) == [(0, 14), (1, 14)]  # 14 = UNAVAILABLE
    assert sink.records() == []


# -- lifecycle and TLS ---------------------------------------------------------


def test_restart_keeps_ports_and_records(tmp_path: Path, sink: Sink, channel: grpc.Channel) -> None:
    statuses, _ = arrow_stream(channel, ARROW_METRICS, produce_bars(tmp_path, [metrics_request()]))
    assert statuses == [(0, 0, "")]
    post(f"{sink.http_url}/v1/metrics", metrics_request().SerializeToString())
    sink.wait_for_records(1)
    sink.set(mode="unavailable")
    grpc_addr, http_addr = sink.grpc_address, sink.http_address
    sink.restart()
    assert (sink.grpc_address, sink.http_address) == (grpc_addr, http_addr)
    assert sink.settings()["mode"] == "unavailable"  # remembered across the restart
    sink.set(mode="ok")
    with grpc.insecure_channel(sink.grpc_address) as ch:
        metrics_stub(ch).Export(metrics_request(), timeout=10)
        statuses, _ = arrow_stream(ch, ARROW_METRICS, produce_bars(tmp_path, [metrics_request()]))
        assert statuses == [(0, 0, "")]
    recs = sink.wait_for_records(4)
    assert [r["via"] for r in recs] == ["otap", "otlp_http", "otlp_grpc", "otap"]
    assert recs[3]["stream"] > recs[0]["stream"]  # stream numbers stay unique across restarts


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    try:
        subprocess.run(["openssl", "version"], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("the openssl CLI is needed to make test certificates; run tests/setup.sh")
    d = tmp_path / "pki"
    d.mkdir()
    p = {n: d / n for n in ("ca.key", "ca.pem", "server.key", "server.pem", "client.key", "client.pem")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", str(p["ca.key"]), "-out", str(p["ca.pem"]))  # fmt: skip
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "extendedKeyUsage=clientAuth")):
        csr = d / f"{name}.csr"
        ext_file = d / f"{name}.ext"
        ext_file.write_text(ext + "\n")
        _openssl("req", *ec, "-subj", f"/CN={name}", "-keyout", str(p[f"{name}.key"]), "-out", str(csr))
        ca_args = ["-CA", str(p["ca.pem"]), "-CAkey", str(p["ca.key"]), "-CAcreateserial"]
        _openssl("x509", "-req", "-in", str(csr), *ca_args, "-days", "2",
                 "-extfile", str(ext_file), "-out", str(p[f"{name}.pem"]))  # fmt: skip
    return p


def test_mtls(tmp_path: Path, pki: dict[str, Path]) -> None:
    with Sink(
        tmp_path / "s.jsonl",
        tls_cert=pki["server.pem"],
        tls_key=pki["server.key"],
        client_ca=pki["ca.pem"],
        binary=sink_binary(),
    ) as s:
        ca = pki["ca.pem"].read_bytes()
        good = grpc.ssl_channel_credentials(
            root_certificates=ca,
            private_key=pki["client.key"].read_bytes(),
            certificate_chain=pki["client.pem"].read_bytes(),
        )
        with grpc.secure_channel(s.grpc_address, good) as ch:
            metrics_stub(ch).Export(metrics_request(), timeout=10)
        with grpc.secure_channel(s.grpc_address, grpc.ssl_channel_credentials(root_certificates=ca)) as ch:
            with pytest.raises(grpc.RpcError) as err:
                metrics_stub(ch).Export(metrics_request(), timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        ctx = ssl.create_default_context(cafile=str(pki["ca.pem"]))
        ctx.load_cert_chain(str(pki["client.pem"]), str(pki["client.key"]))
        assert s.http_url.startswith("https://")
        status, _ = post(f"{s.http_url}/v1/metrics", metrics_request().SerializeToString(), context=ctx)
        assert status == 200
        assert [r["via"] for r in s.wait_for_records(2)] == ["otlp_grpc", "otlp_http"]


def test_go_sink_fixture(go_sink: Sink) -> None:
    assert go_sink.running and go_sink.settings()["mode"] == "ok"
    status, _ = post(f"{go_sink.http_url}/v1/logs", logs_request().SerializeToString())
    assert status == 200
    assert go_sink.wait_for_records(1)[0]["signal"] == "logs"
