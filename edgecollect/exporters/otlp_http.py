"""Plain OTLP over HTTP: spooled batch → Export request (otlp_map.py), protobuf POST, gzip.

Wire: `POST {base}/v1/metrics|logs`, `application/x-protobuf`, `Content-Encoding: gzip`, stdlib
http.client only (imported when the first batch goes, so an unconfigured OTLP/HTTP costs nothing;
and nothing here imports grpc). Retryable: HTTP 429/502/503/504 (Retry-After honoured), 401/403/408
and other 5xx. Anything else is permanent → `reject` (the forwarder quarantines the batch).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from edgecollect import __version__
from edgecollect.errors import UpstreamFault
from edgecollect.exporters.contracts import Delivery, Mode, Outgoing, QueuedVerdicts
from edgecollect.exporters.otlp_map import mapped
from edgecollect.exporters.tls import ssl_context, tls_failure
from edgecollect.exporters.upstream import UpstreamConfig, parse_endpoint, resolve_headers
from edgecollect.telemetry import Telemetry

if TYPE_CHECKING:  # http.client, gzip, email, urllib load only when OTLP/HTTP is configured
    import http.client

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


class OtlpHttpExporter(QueuedVerdicts):
    """OTLP/HTTP protobuf POST with gzip over one kept-alive stdlib connection."""

    protocol = "otlp_http"
    mode: Mode = Mode.OTLP_HTTP

    def __init__(self, cfg: UpstreamConfig, telemetry: Telemetry, wake: Callable[[], None]) -> None:
        super().__init__()
        self._cfg = cfg
        self._wake = wake
        self._endpoint = parse_endpoint(cfg)
        self._gzip = (cfg.compression if cfg.compression != "auto" else "gzip") == "gzip"
        self._conn: http.client.HTTPConnection | None = None
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
