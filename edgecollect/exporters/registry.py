"""`upstream.protocol` → its exporter, one entry per protocol, each module imported only when chosen.

OTLP/HTTP never loads grpc, and OTAP/OTLP-gRPC never load http.client. A new protocol is one
module that implements contracts.Exporter plus one line in EXPORTERS (and its name in
upstream.UpstreamProtocol). The protocol modules import the shared ones (contracts, grpcplumbing,
otlp_map), never each other: OTAP's OTLP/gRPC fallback is handed to it here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgecollect.exporters.contracts import Exporter, ExporterFactory
    from edgecollect.exporters.upstream import UpstreamConfig
    from edgecollect.telemetry import Telemetry

Wake = Callable[[], None]


def _otap(cfg: UpstreamConfig, telemetry: Telemetry, wake: Wake) -> Exporter:
    from edgecollect.exporters.otap import OtapExporter
    from edgecollect.exporters.otlp_grpc import OtlpGrpcExporter

    return OtapExporter(cfg, telemetry, wake, fallback=OtlpGrpcExporter)


def _otlp_grpc(cfg: UpstreamConfig, telemetry: Telemetry, wake: Wake) -> Exporter:
    from edgecollect.exporters.otlp_grpc import OtlpGrpcExporter

    return OtlpGrpcExporter(cfg, telemetry, wake)


def _otlp_http(cfg: UpstreamConfig, telemetry: Telemetry, wake: Wake) -> Exporter:
    from edgecollect.exporters.otlp_http import OtlpHttpExporter

    return OtlpHttpExporter(cfg, telemetry, wake)


EXPORTERS: dict[str, ExporterFactory] = {
    "otap": _otap,
    "otlp_grpc": _otlp_grpc,
    "otlp_http": _otlp_http,
}


def make_exporter(cfg: UpstreamConfig, telemetry: Telemetry, wake: Wake) -> Exporter:
    """The exporter for `cfg.protocol` (config.py has already checked the name against
    upstream.UpstreamProtocol)."""
    return EXPORTERS[cfg.protocol](cfg, telemetry, wake)
