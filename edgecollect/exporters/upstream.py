"""The `[upstream]` config: where to send, how (protocol, TLS, headers, compression), and the
retry and window settings. Checked when loaded, so a bad value is a config error with its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal
from urllib.parse import urlsplit

from edgecollect.configtypes import Duration, FieldError, Key, KeyDocs, Range, redact, resolve_secret
from edgecollect.errors import UpstreamFault

UpstreamProtocol = Literal["otap", "otlp_grpc", "otlp_http"]
Compression = Literal["auto", "gzip", "none"]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str = ""  # PEM bundle trusted instead of the system CAs; "" = system CAs
    cert_file: str = ""  # client certificate (PEM) for mTLS
    key_file: str = ""  # its private key (PEM)
    insecure: bool = False  # plaintext (no TLS at all); only ever when set explicitly

    KEY_DOCS: ClassVar[KeyDocs] = {
        "ca_file": "PEM bundle of the CAs trusted for the collector's certificate; empty: the system's.",
        "cert_file": "Client certificate (PEM) for mutual TLS; needs key_file.",
        "key_file": "The private key (PEM) of cert_file.",
        "insecure": "Send in plaintext, without TLS at all (only ever when set explicitly). Not the same as "
        "sources.mqtt.tls.insecure.",
    }

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            given = "cert_file" if self.cert_file else "key_file"
            raise FieldError(given, "tls.cert_file and tls.key_file together (mTLS needs both), or neither")
        if self.insecure and (self.ca_file or self.cert_file):
            raise FieldError("insecure", "either tls.insecure = true (plaintext) or certificate files, not both")


_ONE_SECOND, _TEN_SECONDS = Duration(1.0), Duration(10.0)
_TWO_MINUTES = Duration(120.0)
_ONE_MINUTE, _TEN_MINUTES, _ONE_HOUR = Duration(60.0), Duration(600.0), Duration(3600.0)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    endpoint: str  # "host:port" (gRPC) or "https://host:port[/base]"; http:// needs tls.insecure
    protocol: UpstreamProtocol = "otap"
    tls: TlsConfig = TlsConfig()
    headers: dict[str, str] = field(default_factory=dict)  # values: literal, env:NAME or file:PATH
    compression: Compression = "auto"  # auto: gzip (on OTAP it halves the per-BAR IPC metadata)
    # Per Export call; the longest wait for one BAR's status.
    timeout: Annotated[Duration, Range("100ms", "10m")] = _TEN_SECONDS
    # OTAP streams are recycled after this. An hour, not the Go exporter's 30 s: at a 10-s cadence a
    # 30-s stream re-sent schemas and dictionaries every third batch (tests/bench/bench_wire.py).
    max_stream_lifetime: Annotated[Duration, Range("1s", "1d")] = _ONE_HOUR
    # Batches that owe no ack (host, serial) wait up to this long to leave together, coalesced into
    # fewer, larger wire batches; acked data (MQTT QoS >= 1) leaves at once. See README "Bytes".
    send_interval: Annotated[Duration, Range("0s", "1h")] = _ONE_MINUTE
    max_in_flight: Annotated[int, Range(1, 1024)] = 8  # unanswered batches per signal (the OTAP window)
    retry_initial: Annotated[Duration, Range("10ms", "1h")] = _ONE_SECOND  # first backoff after a failure
    retry_max: Annotated[Duration, Range("100ms", "1d")] = _ONE_MINUTE  # backoff cap
    # Points/s cap on draining the backlog; None = no cap.
    rate_limit: Annotated[float | None, Range(1, 100_000_000)] = None
    # After an OTLP fallback, try Arrow again this often.
    arrow_reprobe_interval: Annotated[Duration, Range("1s", "7d")] = _TEN_MINUTES
    # Arrow streams a batch may kill with decode errors before it goes by OTLP.
    poison_threshold: Annotated[int, Range(1, 100)] = 3
    # gRPC: close the connection once nothing was sent or answered for this long (grpc's threads end
    # with it; open at rest they wake ~1,100 times a minute). Reconnecting costs bytes: TCP, HTTP/2
    # and TLS set-up, and OTAP's schemas and dictionaries again (2.6x the bytes per send with TLS at
    # a 60-s send_interval, tests/bench/bench_reconnect.py), so the default outlasts send_interval.
    close_idle_after: Annotated[Duration, Range("0s", "1d")] = _TWO_MINUTES

    KEY_DOCS: ClassVar[KeyDocs] = {
        "tls": "TLS to the collector: by default the system's CAs check its certificate.",
        "endpoint": Key('The collector: "host:port" for gRPC, or "https://host:port[/base]" for OTLP/HTTP '
        "(http:// only with tls.insecure = true).", example='"collector.example:4317"'),
        "protocol": Key("How batches are sent.", choices={
        "otap": "OpenTelemetry Arrow over gRPC streams: the smallest on the wire; falls back to OTLP "
        "when the collector cannot take Arrow",
        "otlp_grpc": "plain OTLP over gRPC (port 4317)",
        "otlp_http": "OTLP over HTTP with protobuf bodies (port 4318), for proxies that pass only HTTP"}),
        "headers": 'Extra request headers, such as an API key: { "x-api-key" = "env:API_KEY" }. Each value is '
        '"env:NAME", "file:PATH" or the text itself; never logged.',
        "compression": Key("Compression of what is sent.", choices={
        "auto": "gzip (on OTAP it halves the per-batch Arrow metadata)",
        "gzip": "gzip",
        "none": "no compression (a fast link and a slow CPU)"}),
        "timeout": "Per send: the longest wait for the collector to answer for one batch.",
        "max_stream_lifetime": "OTAP: a gRPC stream is closed and a new one opened after this. A new stream "
        "sends its schemas and dictionaries again, so long streams cost fewer bytes; lower it where a load "
        "balancer cuts long streams.",
        "send_interval": "Batches nobody waits on (host, serial, MQTT QoS 0) are held up to this long and "
        "sent together as one larger wire batch (fewer bytes per point); MQTT QoS 1 batches leave at once. "
        '"0s": send every batch as soon as it is cut.',
        "max_in_flight": "Batches per signal sent and not yet answered (the OTAP window).",
        "retry_initial": "First wait before sending again after a failure.",
        "retry_max": "Longest wait between attempts (the wait grows, with jitter, up to this).",
        "rate_limit": Key("Points per second at most when sending a backlog (after an outage), so the "
        "uplink stays usable. Unset: no limit.", example="5000"),
        "arrow_reprobe_interval": "After falling back from OTAP to OTLP, how often Arrow is tried again.",
        "poison_threshold": "OTAP streams one batch may break (decode errors) before it is sent by OTLP "
        "instead.",
        "close_idle_after": "OTAP and OTLP/gRPC: the connection is closed once nothing has been sent or "
        "answered for this long, and opened again for the next batch. An open gRPC connection wakes the "
        "agent about 1,100 times a minute at rest; each reconnect costs bytes (TCP, HTTP/2 and TLS set-up, "
        "and OTAP's schemas and dictionaries again: about 6 kB more per send with TLS). Longer than "
        'send_interval keeps the connection (the default, for metered uplinks); "5s" lets the agent '
        'sleep between sends on an unmetered link; "0s" closes it as soon as nothing is in flight.',
    }

    def __post_init__(self) -> None:
        if not self.endpoint.strip():
            raise FieldError("endpoint", 'an endpoint such as "collector.example:4317"')
        scheme = urlsplit(self.endpoint).scheme if "://" in self.endpoint else ""
        if scheme not in ("", "http", "https"):
            raise FieldError("endpoint", f"an endpoint with http:// or https:// or no scheme, not {scheme}://")
        if scheme == "http" and not self.tls.insecure:
            raise FieldError("endpoint", "https://, or tls.insecure = true to allow plaintext http://")
        if scheme == "https" and self.tls.insecure:
            raise FieldError("tls.insecure", "false with an https:// endpoint (pick one)")
        parts = urlsplit(self.endpoint if scheme else "//" + self.endpoint.strip())
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise FieldError("endpoint", "an endpoint with a numeric port") from None
        if not parts.hostname:
            raise FieldError("endpoint", "an endpoint with a host name")
        for key in self.headers:
            if not key or key != key.strip() or any(c.isspace() for c in key):
                raise FieldError(("headers", key), "header names without spaces")
        # Single-value ranges are declared on the fields; these also guard direct construction.
        if self.max_in_flight < 1:
            raise FieldError("max_in_flight", "at least 1")
        if self.max_stream_lifetime < 1.0:
            raise FieldError("max_stream_lifetime", "at least 1s")
        if self.send_interval < 0:
            raise FieldError("send_interval", "0s or more")
        if self.timeout <= 0:
            raise FieldError("timeout", "a positive duration")
        if self.retry_initial <= 0:
            raise FieldError("retry_initial", "a positive duration")
        if self.retry_max < self.retry_initial:
            raise FieldError("retry_max", "at least retry_initial")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise FieldError("rate_limit", "more than 0 points/s, or leave it out")
        if self.poison_threshold < 1:
            raise FieldError("poison_threshold", "at least 1")


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    secure: bool
    base_path: str  # OTLP/HTTP only: prefix before /v1/metrics

    @property
    def target(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(cfg: UpstreamConfig) -> Endpoint:
    text = cfg.endpoint.strip()
    parts = urlsplit(text if "://" in text else "//" + text)
    default_port = 4318 if cfg.protocol == "otlp_http" else 4317
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise UpstreamFault(f"endpoint {cfg.endpoint!r}: bad port") from exc
    return Endpoint(parts.hostname or "", port, not cfg.tls.insecure, parts.path.rstrip("/"))


def resolve_headers(cfg: UpstreamConfig) -> list[tuple[str, str]]:
    """Header (lower-case name, value) pairs, secrets resolved now; errors never show a value."""
    out = []
    for key, source in cfg.headers.items():
        try:
            out.append((key.lower(), resolve_secret(source)))
        except (KeyError, OSError) as exc:
            what = type(exc).__name__
            raise UpstreamFault(f"header {key!r} from {redact(source)}: cannot be read ({what})") from exc
    return out
