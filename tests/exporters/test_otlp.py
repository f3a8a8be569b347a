"""The OTLP mapping of spooled batches, the verdict rules, and the forwarder's small parts.

The mapping must equal what the OTAP encoder sends (kinds, temporality, monotonicity, clock-flag
attributes, resource, scope); test_forwarder.py checks the two against the Go decoder end to end.
"""

from __future__ import annotations

import gzip
import http.server
import random
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

from edgecollect import __version__
from edgecollect.batch import Rows, build_logs, build_metrics
from edgecollect.buffer import FLAG_INT
from edgecollect.errors import UpstreamFault
from edgecollect.exporters.contracts import Outgoing
from edgecollect.exporters.grpcplumbing import rpc_failure
from edgecollect.exporters.otlp_http import OtlpHttpExporter, retry_after, status_message
from edgecollect.exporters.otlp_map import logs_request, metrics_request
from edgecollect.exporters.pacing import DrainRate, TokenBucket, backoff_delay
from edgecollect.exporters.upstream import TlsConfig, UpstreamConfig, parse_endpoint, resolve_headers
from edgecollect.model import LogRecord, Resource, Series, SeriesRegistry, attrs
from edgecollect.telemetry import Telemetry

T0 = 1_700_000_000_000_000_000
RESOURCE = Resource(attrs({"host.name": "pi4", "device.id": 7}))


def kv(attributes: Any) -> dict[str, Any]:
    out = {}
    for a in attributes:
        which = a.value.WhichOneof("value")
        out[a.key] = getattr(a.value, which)
    return out


def metrics_batch() -> Any:
    reg = SeriesRegistry()
    g = reg.intern(Series("hw.temperature", "Cel", "gauge", attrs({"sensor": "a", "ch": 1})))
    c = reg.intern(Series("system.network.io", "By", "cumulative", attrs({"direction": "rx"})), T0 - 10**9)
    d = reg.intern(Series("dev.events", "1", "delta"))
    u = reg.intern(Series("queue.depth", "1", "updown", attrs({"ok": True, "ratio": 0.5})), T0 - 2 * 10**9)
    rows = Rows(
        series_ids=[g, g, c, d, u],
        times_ns=[T0, T0 + 1, T0, T0, T0],
        floats=[21.5, 21.75, 0.0, 0.0, 0.0],
        ints=[0, 0, 123456789012, 3, -4],
        flags=[0x01, 0x02, FLAG_INT, FLAG_INT | 0x03, FLAG_INT],
    )
    return build_metrics(rows, reg, RESOURCE, "boot")


def test_metrics_mapping_kinds_values_flags_resource_scope() -> None:
    req = metrics_request(metrics_batch())
    (rm,) = req.resource_metrics
    assert kv(rm.resource.attributes) == {"host.name": "pi4", "device.id": 7}
    (sm,) = rm.scope_metrics
    assert (sm.scope.name, sm.scope.version) == ("edgecollect", __version__)
    metrics = {m.name: m for m in sm.metrics}
    assert set(metrics) == {"hw.temperature", "system.network.io", "dev.events", "queue.depth"}

    temp = metrics["hw.temperature"]
    assert temp.unit == "Cel" and temp.WhichOneof("data") == "gauge"
    p0, p1 = temp.gauge.data_points
    assert (p0.as_double, p0.time_unix_nano, p0.start_time_unix_nano) == (21.5, T0, 0)
    assert kv(p0.attributes) == {"sensor": "a", "ch": 1, "edgecollect.clock.unsynced": True}
    assert kv(p1.attributes) == {"sensor": "a", "ch": 1, "edgecollect.time.repaired": True}
    assert p0.flags == 0

    net = metrics["system.network.io"].sum
    assert net.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE and net.is_monotonic
    (p,) = net.data_points
    assert p.WhichOneof("value") == "as_int" and p.as_int == 123456789012
    assert p.start_time_unix_nano == T0 - 10**9

    events = metrics["dev.events"].sum
    assert events.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_DELTA and events.is_monotonic
    assert kv(events.data_points[0].attributes) == {
        "edgecollect.clock.unsynced": True, "edgecollect.time.repaired": True}

    depth = metrics["queue.depth"].sum
    assert depth.aggregation_temporality == metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert not depth.is_monotonic
    assert depth.data_points[0].as_int == -4
    assert kv(depth.data_points[0].attributes) == {"ok": True, "ratio": 0.5}


def test_logs_mapping_every_body_type() -> None:
    bodies: list[Any] = ["line", 42, 2.5, True, b"\x00\xff"]
    port = attrs({"port": "/dev/ttyUSB0"})
    records = [LogRecord(T0 + i, b, "ERROR", 17, port) for i, b in enumerate(bodies)]
    req = logs_request(build_logs(records, RESOURCE, "boot", flags=0x01))
    (rl,) = req.resource_logs
    assert kv(rl.resource.attributes) == {"host.name": "pi4", "device.id": 7}
    (sl,) = rl.scope_logs
    assert sl.scope.name == "edgecollect"
    got = [getattr(r.body, str(r.body.WhichOneof("value"))) for r in sl.log_records]
    assert got == bodies
    first = sl.log_records[0]
    assert (first.time_unix_nano, first.severity_number, first.severity_text) == (T0, 17, "ERROR")
    assert kv(first.attributes) == {"port": "/dev/ttyUSB0", "edgecollect.clock.unsynced": True}


def test_retry_after_forms() -> None:
    assert retry_after("120") == 120.0
    assert retry_after(None) is None
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now=1445412480.0) == 30.0


def test_status_message_reads_google_rpc_status() -> None:
    msg = b"batch too large"
    body = bytes([0x08, 0x03, 0x12, len(msg)]) + msg
    assert status_message(body) == "batch too large"
    assert status_message(b"plain text error") == "plain text error"


def test_backoff_is_capped_jittered_and_grows() -> None:
    rng = random.Random(1)
    for failures in range(1, 40):
        delay = backoff_delay(failures, 1.0, 60.0, rng)
        cap = min(60.0, 2.0 ** (failures - 1))
        assert cap / 2 <= delay <= cap
    assert backoff_delay(100, 1.0, 60.0, rng) <= 60.0


def test_token_bucket_and_drain_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(100.0, clock=lambda: now[0])
    assert bucket.wait_s() == 0.0
    bucket.take(300)  # one big batch may go; the debt is waited off
    assert bucket.wait_s() == pytest.approx(2.0)
    now[0] = 2.5
    assert bucket.wait_s() == 0.0
    rate = DrainRate(10.0, clock=lambda: now[0])
    now[0] = 12.5
    rate.add(500)
    assert rate.rate() == pytest.approx(50.0)
    now[0] = 30.0
    assert rate.rate() == 0.0


def test_endpoints() -> None:
    ep = parse_endpoint(UpstreamConfig(endpoint="collector.example"))
    assert (ep.host, ep.port, ep.secure) == ("collector.example", 4317, True)
    ep = parse_endpoint(UpstreamConfig(endpoint="https://otel.example/prefix/", protocol="otlp_http"))
    assert (ep.host, ep.port, ep.base_path) == ("otel.example", 4318, "/prefix")
    ep = parse_endpoint(UpstreamConfig(endpoint="http://[::1]:9000", protocol="otlp_http",
                                       tls=TlsConfig(insecure=True)))
    assert (ep.target, ep.secure) == ("[::1]:9000", False)


def test_config_checks() -> None:
    for bad in ({"endpoint": " "}, {"endpoint": "ftp://x"}, {"endpoint": "x", "max_in_flight": 0},
                {"endpoint": "x", "max_stream_lifetime": 0.5}, {"endpoint": "x", "rate_limit": 0.0},
                {"endpoint": "x", "retry_initial": 5.0, "retry_max": 1.0},
                {"endpoint": "x", "poison_threshold": 0},
                {"endpoint": "x", "headers": {"bad key": "v"}}, {"endpoint": "host:port"},
                {"endpoint": "https://:4318"}):
        with pytest.raises(ValueError):
            UpstreamConfig(**bad)
    cfg = UpstreamConfig(endpoint="x")
    assert (cfg.protocol, cfg.max_stream_lifetime, cfg.arrow_reprobe_interval, cfg.tls.insecure) == (
        "otap", 3600.0, 600.0, False)


def test_headers_resolve_secrets_and_errors_hide_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EC_T", "hunter2")
    (tmp_path / "k").write_text("filevalue\n")
    headers = {"Authorization": "env:EC_T", "x-key": f"file:{tmp_path / 'k'}", "x-lit": "plain"}
    cfg = UpstreamConfig(endpoint="x", headers=headers)
    assert resolve_headers(cfg) == [("authorization", "hunter2"), ("x-key", "filevalue"), ("x-lit", "plain")]
    monkeypatch.delenv("EC_T")
    with pytest.raises(UpstreamFault) as err:
        resolve_headers(cfg)
    assert "env:EC_T" in str(err.value)


def test_rpc_failure_classes() -> None:
    tls_cfg = UpstreamConfig(endpoint="gw:4317", tls=TlsConfig(ca_file="/ca.pem"))
    reason, text, reachable = rpc_failure(
        tls_cfg, grpc.StatusCode.UNAVAILABLE, "Ssl handshake failed: CERTIFICATE_VERIFY_FAILED")
    assert reason == "tls" and not reachable and "ca_file /ca.pem" in text and "gw:4317" in text
    plain = UpstreamConfig(endpoint="gw:4317", tls=TlsConfig(insecure=True))
    refused = "failed to connect to all addresses"
    reason, _, reachable = rpc_failure(plain, grpc.StatusCode.UNAVAILABLE, refused)
    assert (reason, reachable) == ("connect", False)
    reason, _, reachable = rpc_failure(plain, grpc.StatusCode.UNAVAILABLE, "sink: random_unavailable")
    assert (reason, reachable) == ("unavailable", True)


# -- OTLP/HTTP answers, from a real local HTTP server ------------------------------------------

class _Script(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, dict[str, str]]]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        assert self.headers["Content-Encoding"] == "gzip"
        type(self).bodies.append(gzip.decompress(body))
        status, headers = type(self).answers.pop(0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[type[_Script], str]]:
    handler = type("Handler", (_Script,), {"answers": [], "bodies": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_answers_map_to_verdicts(scripted: tuple[type[_Script], str]) -> None:
    handler, url = scripted
    handler.answers = [(429, {"Retry-After": "7"}), (503, {}), (401, {}), (400, {}), (404, {}), (200, {})]
    cfg = UpstreamConfig(endpoint=url, protocol="otlp_http", tls=TlsConfig(insecure=True))
    exporter = OtlpHttpExporter(cfg, Telemetry(), lambda: None)
    item = Outgoing(1, "metrics", metrics_batch(), 5)
    for _ in range(6):
        exporter.submit(item)
    got = [(d.outcome, d.reason, d.retry_after_s) for d in exporter.poll()]
    assert got == [("retry", "http_4xx", 7.0), ("retry", "http_5xx", None), ("retry", "http_4xx", None),
                   ("reject", "http_4xx", None), ("reject", "http_4xx", None), ("ok", "ok", None)]
    sent = metrics_service_pb2.ExportMetricsServiceRequest.FromString(handler.bodies[-1])
    assert sent == metrics_request(metrics_batch())
    exporter.close(1.0)


class _Tunnel(socketserver.StreamRequestHandler):
    """A minimal HTTP CONNECT proxy, as found in front of many gateways' networks."""

    def handle(self) -> None:
        request = self.rfile.readline().decode().strip()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        self.server.seen.append(request)  # type: ignore[attr-defined]
        host, port = request.split()[1].rsplit(":", 1)
        with socket.create_connection((host, int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()

            def pump(src: socket.socket, dst: socket.socket) -> None:
                try:
                    while data := src.recv(65536):
                        dst.sendall(data)
                except OSError:
                    pass
                finally:
                    dst.shutdown(socket.SHUT_WR)

            back = threading.Thread(target=pump, args=(upstream, self.connection), daemon=True)
            back.start()
            pump(self.connection, upstream)
            back.join(5)


def test_http_goes_through_the_configured_proxy(
    scripted: tuple[type[_Script], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, url = scripted
    handler.answers = [(200, {})]
    proxy = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Tunnel)
    proxy.daemon_threads = True
    proxy.seen = []  # type: ignore[attr-defined]
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for var in ("no_proxy", "NO_PROXY", "HTTP_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.server_address[1]}")
        cfg = UpstreamConfig(endpoint=url, protocol="otlp_http", tls=TlsConfig(insecure=True))
        exporter = OtlpHttpExporter(cfg, Telemetry(), lambda: None)
        exporter.submit(Outgoing(1, "metrics", metrics_batch(), 5))
        assert [d.outcome for d in exporter.poll()] == ["ok"]
        exporter.close(1.0)
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert [r.rsplit(" ", 1)[0] for r in proxy.seen] == [f"CONNECT {url.removeprefix('http://')}"]  # type: ignore[attr-defined]
    assert len(handler.bodies) == 1
