"""Plain OTLP over gRPC: spooled batch → Export request (otlp_map.py), one unary call per batch;
also OTAP's fallback on OTAP's channel (registry.py hands this class to it).

Wire: `/opentelemetry.proto.collector.{metrics,logs}.v1.{Metrics,Logs}Service/Export`. Retryable:
CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS, RESOURCE_EXHAUSTED,
UNKNOWN (grpcio's "Stream removed"), and the auth codes (a revoked token must not cost data);
anything else is permanent → `reject` (the forwarder quarantines the batch). grpcplumbing.py maps
the codes and owns the channel and the gzip step-down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from edgecollect.errors import UpstreamFault
from edgecollect.exporters.contracts import Delivery, Mode, Outgoing, QueuedVerdicts
from edgecollect.exporters.grpcplumbing import CallCompression, GrpcChannel, grpc_delivery
from edgecollect.exporters.otlp_map import ExportRequest, mapped
from edgecollect.exporters.upstream import UpstreamConfig
from edgecollect.telemetry import Telemetry

log = logging.getLogger(__name__)

_EXPORT_PATH = {"metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
                "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export"}
_RESPONSE: dict[str, Any] = {"metrics": metrics_service_pb2.ExportMetricsServiceResponse,
                             "logs": logs_service_pb2.ExportLogsServiceResponse}


class OtlpGrpcExporter(QueuedVerdicts):
    """Unary OTLP/gRPC Export; also the OTAP exporter's fallback on the same channel."""

    protocol = "otlp_grpc"
    mode: Mode = Mode.OTLP_GRPC

    def __init__(self, cfg: UpstreamConfig, telemetry: Telemetry, wake: Callable[[], None],
                 channel: GrpcChannel | None = None) -> None:
        super().__init__()
        self._cfg = cfg
        self._wake = wake
        self._own_channel = channel is None
        self.channel = channel or GrpcChannel(cfg)
        self._compression = CallCompression(cfg, "OTLP")
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
        compression = self._compression.current
        try:
            resp = call(req, timeout=self._cfg.timeout, metadata=metadata, compression=compression)
        except grpc.RpcError as exc:
            self.channel.touch()
            details = exc.details() or ""
            if self._compression.refused(exc.code(), details, compression):
                return Delivery(item.spool_id, "retry", "compression", details, self.protocol, backoff=False)
            d = grpc_delivery(self._cfg, item, exc.code(), details, self.protocol, permanent_unimplemented)
            if not d.reachable:
                self.channel.reset()
            return d
        self.channel.touch()
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

    def poll(self) -> list[Delivery]:
        at = self.wake_at()
        if at is not None and time.monotonic() >= at:
            self.channel.reset()  # idle: grpc's threads go with the channel; the next batch reopens it
        return super().poll()

    def wake_at(self) -> float | None:
        # As OTAP's fallback the channel is OTAP's, and so is the decision to close it.
        return self.channel.idle_deadline() if self._own_channel else None

    def close(self, timeout_s: float) -> list[Delivery]:
        if self._own_channel:
            self.channel.close()
        return self.poll()
