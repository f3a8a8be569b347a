"""What every gRPC exporter shares: the channel, its credentials, call compression with its one
step-down, and the mapping of a failed call to a Delivery's reason.

OTAP streams and unary OTLP/gRPC Export (alone, or as OTAP's fallback on the same channel) use
this module and contracts.py, never each other. Importing it imports grpc: only registry.py's
gRPC entries lead here, so an OTLP/HTTP agent never loads grpc.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import grpc

from edgecollect import __version__
from edgecollect.exporters.contracts import Delivery, Outgoing
from edgecollect.exporters.tls import grpc_credentials, looks_like_tls_failure, tls_failure
from edgecollect.exporters.upstream import UpstreamConfig, parse_endpoint, resolve_headers

if TYPE_CHECKING:
    from edgecollect.telemetry import Telemetry

log = logging.getLogger(__name__)


# -- failures ---------------------------------------------------------------------------------

RETRYABLE = frozenset({
    grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED,
})
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
    """The verdict on a failed unary call: retry for RETRYABLE codes, else reject."""
    reason, sentence, reachable = rpc_failure(cfg, code, details)
    retry = code in RETRYABLE and not (permanent_unimplemented and code == grpc.StatusCode.UNIMPLEMENTED)
    return Delivery(item.spool_id, "retry" if retry else "reject", reason, sentence, via, reachable=reachable)


# -- compression ------------------------------------------------------------------------------

class CallCompression:
    """The compression of one exporter's calls: gzip unless configured otherwise, stepped down to
    none for good the first time the server says it cannot decompress it (UNIMPLEMENTED naming
    grpc-encoding), which is then a reason to resend at once, not to back off or leave the protocol."""

    def __init__(self, cfg: UpstreamConfig, what: str) -> None:
        choice = "gzip" if cfg.compression == "auto" else cfg.compression
        self.current = grpc.Compression.Gzip if choice == "gzip" else grpc.Compression.NoCompression
        self._endpoint = cfg.endpoint
        self._what = what
        self._lock = threading.Lock()  # OTAP's stream readers report from their own threads

    def refused(self, code: grpc.StatusCode | None, details: str, used: grpc.Compression) -> bool:
        """True when a call made with `used` failed because the server lacks that codec; later
        calls then go uncompressed (logged once)."""
        if (code != grpc.StatusCode.UNIMPLEMENTED or "grpc-encoding" not in details
                or used == grpc.Compression.NoCompression):
            return False
        with self._lock:
            if self.current != grpc.Compression.NoCompression:
                log.warning("upstream %s cannot decompress gzip (%s); sending %s uncompressed",
                            self._endpoint, details, self._what)
                self.current = grpc.Compression.NoCompression
        return True


# -- the channel ------------------------------------------------------------------------------

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
    grpc-core's own reconnect backoff, which would stack on top of ours. Closed when idle for
    `close_idle_after` (its owner decides when it is idle): grpc's event-engine, timer and lifeguard
    threads exist only while a channel does, and an open one wakes them ~600 times a minute even
    with nothing to send (tests/bench/footprint_budget.py).
    """

    def __init__(self, cfg: UpstreamConfig) -> None:
        self._cfg = cfg
        self._endpoint = parse_endpoint(cfg)
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()
        self.last_used = time.monotonic()
        self.opened = 0  # channels opened so far (reconnects after an idle close or a failure)
        let_grpc_threads_sleep()

    @property
    def is_open(self) -> bool:
        return self._channel is not None

    def touch(self) -> None:
        """Something was sent or answered now: the idle time starts again."""
        self.last_used = time.monotonic()

    def idle_deadline(self) -> float | None:
        """When the open channel counts as idle, or None when it is closed."""
        return self.last_used + self._cfg.close_idle_after if self._channel is not None else None

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
                self.last_used = time.monotonic()
                self.opened += 1
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


# -- a fallback on the same channel -----------------------------------------------------------

class UnaryFallback(Protocol):
    """Unary Export on a stream protocol's channel, for what its streams cannot carry."""

    def submit(self, item: Outgoing, *, permanent_unimplemented: bool = False) -> None: ...

    def poll(self) -> list[Delivery]: ...


FallbackFactory = Callable[[UpstreamConfig, "Telemetry", Callable[[], None], GrpcChannel], UnaryFallback]
