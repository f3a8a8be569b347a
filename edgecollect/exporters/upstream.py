"""The `[upstream]` config: where to send, how (protocol, TLS, headers, compression), and the
retry and window settings. Checked when loaded, so a bad value is a config error with its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from edgecollect.configtypes import Duration, redact, resolve_secret
from edgecollect.errors import UpstreamFault

UpstreamProtocol = Literal["otap", "otlp_grpc", "otlp_http"]
Compression = Literal["auto", "gzip", "none"]


@dataclass(frozen=True, slots=True)
class TlsConfig:
    ca_file: str = ""  # PEM bundle trusted instead of the system CAs; "" = system CAs
    cert_file: str = ""  # client certificate (PEM) for mTLS
    key_file: str = ""  # its private key (PEM)
    insecure: bool = False  # plaintext (no TLS at all); only ever when set explicitly

    def __post_init__(self) -> None:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("tls.cert_file and tls.key_file together (mTLS needs both), or neither")
        if self.insecure and (self.ca_file or self.cert_file):
            raise ValueError("either tls.insecure = true (plaintext) or certificate files, not both")


_ONE_SECOND, _TEN_SECONDS = Duration(1.0), Duration(10.0)
_ONE_MINUTE, _TEN_MINUTES, _ONE_HOUR = Duration(60.0), Duration(600.0), Duration(3600.0)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    endpoint: str  # "host:port" (gRPC) or "https://host:port[/base]"; http:// needs tls.insecure
    protocol: UpstreamProtocol = "otap"
    tls: TlsConfig = TlsConfig()
    headers: dict[str, str] = field(default_factory=dict)  # values: literal, env:NAME or file:PATH
    compression: Compression = "auto"  # auto: gzip (on OTAP it halves the per-BAR IPC metadata)
    timeout: Duration = _TEN_SECONDS  # per Export call; longest wait for one BAR's status
    # OTAP streams are recycled after this. An hour, not the Go exporter's 30 s: at a 10-s cadence a
    # 30-s stream re-sent schemas and dictionaries every third batch (tests/bench/bench_wire.py).
    max_stream_lifetime: Duration = _ONE_HOUR
    # Batches that owe no ack (host, serial) wait up to this long to leave together, coalesced into
    # fewer, larger wire batches; acked data (MQTT QoS >= 1) leaves at once. See README "Bytes".
    send_interval: Duration = _ONE_MINUTE
    max_in_flight: int = 8  # unanswered batches per signal (the OTAP window)
    retry_initial: Duration = _ONE_SECOND  # first backoff after a failure
    retry_max: Duration = _ONE_MINUTE  # backoff cap
    rate_limit: float | None = None  # points/s cap on draining the backlog; None = no cap
    arrow_reprobe_interval: Duration = _TEN_MINUTES  # after an OTLP fallback, try Arrow again
    poison_threshold: int = 3  # Arrow streams a batch may kill with decode errors before OTLP

    def __post_init__(self) -> None:
        if not self.endpoint.strip():
            raise ValueError('an endpoint such as "collector.example:4317"')
        scheme = urlsplit(self.endpoint).scheme if "://" in self.endpoint else ""
        if scheme not in ("", "http", "https"):
            raise ValueError(f"an endpoint with http:// or https:// or no scheme, not {scheme}://")
        if scheme == "http" and not self.tls.insecure:
            raise ValueError("http:// is plaintext: set tls.insecure = true to allow it, or use https://")
        if scheme == "https" and self.tls.insecure:
            raise ValueError("https:// with tls.insecure = true: pick one")
        parts = urlsplit(self.endpoint if scheme else "//" + self.endpoint.strip())
        try:
            parts.port  # noqa: B018 - urlsplit checks the port only when asked
        except ValueError:
            raise ValueError(f"an endpoint with a numeric port, found {self.endpoint!r}") from None
        if not parts.hostname:
            raise ValueError(f"an endpoint with a host name, found {self.endpoint!r}")
        for key in self.headers:
            if not key or key != key.strip() or any(c.isspace() for c in key):
                raise ValueError(f"header names without spaces, found {key!r}")
        if self.max_in_flight < 1:
            raise ValueError("max_in_flight >= 1")
        if self.max_stream_lifetime < 1.0:
            raise ValueError("max_stream_lifetime >= 1s")
        if self.send_interval < 0:
            raise ValueError("send_interval >= 0s")
        if self.timeout <= 0 or self.retry_initial <= 0 or self.retry_max < self.retry_initial:
            raise ValueError("timeout > 0 and 0 < retry_initial <= retry_max")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit > 0 points/s, or leave it out")
        if self.poison_threshold < 1:
            raise ValueError("poison_threshold >= 1")


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
