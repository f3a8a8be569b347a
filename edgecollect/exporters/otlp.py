"""Plain OTLP: spooled batch → Export request (otlp_map.py), over gRPC (unary) or HTTP (protobuf
POST, gzip).

Wire: gRPC `/opentelemetry.proto.collector.{metrics,logs}.v1.{Metrics,Logs}Service/Export`;
HTTP `POST {base}/v1/metrics|logs`, `application/x-protobuf`, `Content-Encoding: gzip`, stdlib
http.client only. Retryable: gRPC CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
DATA_LOSS, RESOURCE_EXHAUSTED, UNKNOWN (grpcio's "Stream removed"), and the auth codes (a revoked
token must not cost data); HTTP 429/502/503/504 (Retry-After honoured), 401/403/408 and other 5xx.
Anything else is permanent → `reject` (the forwarder quarantines the batch).
"""

from __future__ import annotations

import collections
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from edgecollect import __version__
from edgecollect.errors import UpstreamFault
from edgecollect.exporters.base import Delivery, Outgoing
from edgecollect.exporters.otlp_map import ExportRequest, mapped
from edgecollect.exporters.tls import grpc_credentials, looks_like_tls_failure, ssl_context, tls_failure
from edgecollect.exporters.upstream import UpstreamConfig, parse_endpoint, resolve_headers
from edgecollect.telemetry import Telemetry

if TYPE_CHECKING:  # http.client, gzip, email, urllib load only when OTLP/HTTP is configured
    import http.client

log = logging.getLogger(__name__)

_EXPORT_PATH = {"metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}
_RESPONSE: dict[str, Any] = {"metrics": metrics_service_pb2.ExportMetricsServiceResponse,
                             "logs": logs_service_pb2.ExportLogsServiceResponse}


# -- verdicts ---------------------------------------------------------------------------------

_RETRYABLE = {
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED,
}
_CONNECT_MARKERS = ("failed to connect", "connection refused", "dns resolution", "name resolution",
                    "connection reset", "no route to host", "network is unreachable", "socket closed")


def rpc_failure(cfg: UpstreamConfig, code: grpc.StatusCode, details: str) -> tuple[str, str, bool]:
    """(reason label, sentence, reachable) for a failed gRPC call."""
    details = details or ""
    if code == grpc.StatusCode.UNAVAILABLE and not cfg.tls.insecure and looks_like_tls_failure(details):
        return "tls", tls_failure(cfg.endpoint, cfg.tls, details), False
    if code == grpc.StatusCode.UNAVAILABLE and any(m in details.lower() for m in _CONNECT_MARKERS):
        return "connect", f"cannot connect to {cfg.endpoint}: {details}", False
    name = code.name.lower()
    return name, f"{cfg.endpoint} answered {code.name}: {details}", True


def grpc_delivery(cfg: UpstreamConfig, item: Outgoing, code: grpc.StatusCode, details: str,
                  via: str, permanent_unimplemented: bool = False) -> Delivery:
    reason, sentence, reachable = rpc_failure(cfg, code, details)
    retry = code in _RETRYABLE and not (permanent_unimplemented and code == grpc.StatusCode.UNIMPLEMENTED)
    return Delivery(item.spool_id, "retry" if retry else "reject", reason, sentence, via, reachable=reachable)


# -- gRPC -------------------------------------------------------------------------------------

def let_grpc_threads_sleep() -> None:
    """grpcio wakes every thread blocked on a call 10 times a second (grpc._common.wait, so that
    the *main* thread can run signal handlers; https://github.com/grpc/grpc/issues/19464). Our
    blocked threads (OTAP stream readers, unary OTLP calls) are never the main thread, and a
    completion notifies them at once: waking every 5 s instead costs nothing. With two OTAP
    streams at rest the process went from 1,792 to 1,331 wake-ups/min
    (tests/bench/bench_bytes.py). Best effort: a grpcio
    without this private constant keeps its own."""
    common = getattr(grpc, "_common", None)
    if common is not None and isinstance(getattr(common, "MAXIMUM_WAIT_TIMEOUT", None), float):
        common.MAXIMUM_WAIT_TIMEOUT = max(common.MAXIMUM_WAIT_TIMEOUT, 5.0)


class GrpcChannel:
    """One lazily opened channel to the endpoint, shared by OTAP streams and the OTLP fallback.

    Reset after connection failures: a fresh channel dials at once, whereas a failed one waits out
    grpc-core's own reconnect backoff, which would stack on top of ours.
    """

    def __init__(self, cfg: UpstreamConfig) -> None:
        self._cfg = cfg
        self._endpoint = parse_endpoint(cfg)
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()
        let_grpc_threads_sleep()

    def get(self) -> grpc.Channel:
        """The channel; raises UpstreamFault when TLS files cannot be read."""
        with self._lock:
            if self._channel is None:
                options = [
                    ("grpc.primary_user_agent", f"edgecollect/{__version__}"),
                    ("grpc.initial_reconnect_backoff_ms", int(self._cfg.retry_initial * 1000)),
                    ("grpc.min_reconnect_backoff_ms", int(self._cfg.retry_initial * 1000)),
                    ("grpc.max_reconnect_backoff_ms", int(self._cfg.retry_max * 1000)),
                    ("grpc.max_receive_message_length", 16 << 20),
                    ("grpc.enable_retries", 0),
                    # No bandwidth-probe pings after each response: on a link at rest they only
                    # wake grpc's threads and the radio.
                    ("grpc.http2.bdp_probe", 0),
                ]
                creds = grpc_credentials(self._cfg.tls)
                target = self._endpoint.target
                self._channel = (grpc.insecure_channel(target, options) if creds is None
                                 else grpc.secure_channel(target, creds, options))
            return self._channel

    def reset(self) -> None:
        with self._lock:
            channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    close = reset

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata, secrets read now (per call or stream) so a rotated token file is picked up."""
        return tuple(resolve_headers(self._cfg))


def grpc_compression(cfg: UpstreamConfig, default: str) -> grpc.Compression:
    choice = default if cfg.compression == "auto" else cfg.compression
    return grpc.Compression.Gzip if choice == "gzip" else grpc.Compression.NoCompression


class _UnaryExporter:
    """What both unary OTLP exporters share: verdicts queue up as they are reached, one protocol."""

    protocol: str
    _done: collections.deque[Delivery]

    def poll(self) -> list[Delivery]:
        out = []
        while self._done:
            out.append(self._done.popleft())
        return out

    def modes(self) -> dict[str, str]:
        return {"metrics": self.protocol, "logs": self.protocol}


class OtlpGrpcExporter(_UnaryExporter):
    """Unary OTLP/gRPC Export; also the OTAP exporter's fallback on the same channel."""

    protocol = "otlp_grpc"

    def __init__(self, cfg: UpstreamConfig, telemetry: Telemetry, wake: Callable[[], None],
                 channel: GrpcChannel | None = None) -> None:
        self._cfg = cfg
        self._wake = wake
        self._own_channel = channel is None
        self.channel = channel or GrpcChannel(cfg)
        self._done: collections.deque[Delivery] = collections.deque()
        self._compression = grpc_compression(cfg, "gzip")
        self._partial = telemetry.counter("upstream", "partial_rejected", "signal")
        self._bytes = telemetry.counter("upstream", "bytes_sent", "protocol", unit="By")

    def submit(self, item: Outgoing, *, permanent_unimplemented: bool = False) -> None:
        self._done.append(self.export(item, permanent_unimplemented=permanent_unimplemented))
        self._wake()

    def export(self, item: Outgoing, *, permanent_unimplemented: bool = False) -> Delivery:
        try:
            channel = self.channel.get()
            metadata = self.channel.metadata()
        except UpstreamFault as exc:
            return Delivery(item.spool_id, "retry", "config", str(exc), self.protocol, reachable=False)
        req = self.request(item)
        if isinstance(req, Delivery):
            return req
        call = channel.unary_unary(
            _EXPORT_PATH[item.signal],
            request_serializer=type(req).SerializeToString,
            response_deserializer=_RESPONSE[item.signal].FromString,
        )
        try:
            resp = call(req, timeout=self._cfg.timeout, metadata=metadata,
                        compression=self._compression)
        except grpc.RpcError as exc:
            details = exc.details() or ""
            if (exc.code() == grpc.StatusCode.UNIMPLEMENTED and "grpc-encoding" in details
                    and self._compression != grpc.Compression.NoCompression):
                # A server without that decompressor: send uncompressed from now on, resend at once.
                log.warning("upstream %s cannot decompress gzip (%s); sending OTLP uncompressed",
                            self._cfg.endpoint, details)
                self._compression = grpc.Compression.NoCompression
                return Delivery(item.spool_id, "retry", "compression", details, self.protocol, backoff=False)
            d = grpc_delivery(self._cfg, item, exc.code(), details, self.protocol, permanent_unimplemented)
            if not d.reachable:
                self.channel.reset()
            return d
        self._bytes.inc(self.protocol, req.ByteSize())
        self._partial_success(item, resp)
        return Delivery(item.spool_id, "ok", via=self.protocol)

    def request(self, item: Outgoing) -> ExportRequest | Delivery:
        return mapped(item, self.protocol)

    def _partial_success(self, item: Outgoing, resp: Any) -> None:
        ps = resp.partial_success
        rejected = ps.rejected_data_points if item.signal == "metrics" else ps.rejected_log_records
        if rejected or ps.error_message:
            # OTLP says: the rest was accepted and must not be resent; count and log what wasn't.
            self._partial.inc(item.signal, rejected)
            log.warning("upstream %s accepted spool batch %d partially: %d rejected (%s)",
                        self._cfg.endpoint, item.spool_id, rejected, ps.error_message)

    def close(self, timeout_s: float) -> list[Delivery]:
        if self._own_channel:
            self.channel.close()
        return self.poll()


# -- HTTP -------------------------------------------------------------------------------------

_HTTP_RETRYABLE = {401, 403, 408, 429}


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); None if absent or bad."""
    if not value:
        return None
    import email.utils

    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def status_message(body: bytes) -> str:
    """`message` (field 2) of a google.rpc.Status body, read off the wire; "" if it isn't one."""
    i = 0
    try:
        while i < len(body):
            tag = body[i]
            i += 1
            if tag == 0x08:  # field 1, varint: the code
                while body[i] & 0x80:
                    i += 1
                i += 1
            elif tag == 0x12:  # field 2, length-delimited: the message
                length, shift = 0, 0
                while True:
                    b = body[i]
                    i += 1
                    length |= (b & 0x7F) << shift
                    shift += 7
                    if not b & 0x80:
                        break
                return body[i:i + length].decode("utf-8", "replace")
            else:
                break
    except IndexError:
        pass
    return body[:200].decode("utf-8", "replace").strip()


def _proxy_for(host: str, secure: bool) -> tuple[str, int] | None:
    """(host, port) of the proxy from https_proxy / http_proxy unless no_proxy exempts `host`.

    gRPC reads the same variables itself; this gives OTLP/HTTP the same behaviour behind a
    corporate proxy, the usual reason to choose HTTP at all.
    """
    import urllib.request

    url = urllib.request.getproxies().get("https" if secure else "http")
    if not url or urllib.request.proxy_bypass(host):
        return None
    parts = urlsplit(url if "://" in url else "http://" + url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or 3128


class OtlpHttpExporter(_UnaryExporter):
    """OTLP/HTTP protobuf POST with gzip over one kept-alive stdlib connection."""

    protocol = "otlp_http"

    def __init__(self, cfg: UpstreamConfig, telemetry: Telemetry, wake: Callable[[], None]) -> None:
        self._cfg = cfg
        self._wake = wake
        self._endpoint = parse_endpoint(cfg)
        self._gzip = (cfg.compression if cfg.compression != "auto" else "gzip") == "gzip"
        self._conn: http.client.HTTPConnection | None = None
        self._done: collections.deque[Delivery] = collections.deque()
        self._bytes = telemetry.counter("upstream", "bytes_sent", "protocol", unit="By")

    def _connection(self) -> http.client.HTTPConnection:
        import http.client

        if self._conn is None:
            ctx = ssl_context(self._cfg.tls)
            host, port, timeout = self._endpoint.host, self._endpoint.port, self._cfg.timeout
            proxy = _proxy_for(host, ctx is not None)
            # Through a proxy: a CONNECT tunnel, with TLS (and SNI) end to end to the collector.
            dial_host, dial_port = proxy if proxy else (host, port)
            conn = (http.client.HTTPConnection(dial_host, dial_port, timeout=timeout) if ctx is None
                    else http.client.HTTPSConnection(dial_host, dial_port, timeout=timeout, context=ctx))
            if proxy:
                conn.set_tunnel(host, port)
            self._conn = conn
        return self._conn

    def submit(self, item: Outgoing) -> None:
        self._done.append(self._post(item))
        self._wake()

    def _post(self, item: Outgoing) -> Delivery:
        import gzip
        import http.client

        req = mapped(item, self.protocol)
        if isinstance(req, Delivery):
            return req
        body = req.SerializeToString()
        headers = {"Content-Type": "application/x-protobuf", "User-Agent": f"edgecollect/{__version__}"}
        if self._gzip:
            body = gzip.compress(body, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        path = f"{self._endpoint.base_path}/v1/{item.signal}"
        try:
            for attempt in (1, 2):
                reused = self._conn is not None
                conn = self._connection()
                headers.update(resolve_headers(self._cfg))  # per request: rotated tokens apply
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    payload = resp.read()
                    break
                except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
                    # The server may close an idle kept-alive connection: one fresh try, no backoff.
                    self._drop_connection()
                    if not reused or attempt == 2:
                        raise
        except UpstreamFault as exc:
            return Delivery(item.spool_id, "retry", "config", str(exc), self.protocol, reachable=False)
        except ssl.SSLError as exc:
            self._drop_connection()
            sentence = tls_failure(self._cfg.endpoint, self._cfg.tls, str(exc))
            return Delivery(item.spool_id, "retry", "tls", sentence, self.protocol, reachable=False)
        except (OSError, http.client.HTTPException) as exc:
            self._drop_connection()
            timed_out = isinstance(exc, (socket.timeout, TimeoutError))
            reason = "timeout" if timed_out else "connect"
            sentence = f"cannot POST to {self._cfg.endpoint}{path}: {exc!r}"
            return Delivery(item.spool_id, "retry", reason, sentence, self.protocol, reachable=timed_out)
        if resp.getheader("Connection", "").lower() == "close":
            self._drop_connection()
        self._bytes.inc(self.protocol, len(body))
        if resp.status == 200:
            return Delivery(item.spool_id, "ok", via=self.protocol)
        detail = f"{self._cfg.endpoint}{path} answered HTTP {resp.status}: {status_message(payload)}"
        if resp.status in _HTTP_RETRYABLE or resp.status >= 500:
            return Delivery(item.spool_id, "retry", f"http_{resp.status // 100}xx", detail, self.protocol,
                            retry_after_s=retry_after(resp.getheader("Retry-After")))
        return Delivery(item.spool_id, "reject", f"http_{resp.status // 100}xx", detail, self.protocol)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self, timeout_s: float) -> list[Delivery]:
        self._drop_connection()
        return self.poll()
