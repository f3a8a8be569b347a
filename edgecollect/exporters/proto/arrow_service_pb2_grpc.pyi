# Hand-written stub for the generated arrow_service_pb2_grpc.py (grpcio-tools makes none); see
# generate.sh. Only the client stubs and servicer registration that edgecollect and its tests use.
from collections.abc import Iterator
from typing import Any

from edgecollect.exporters.proto import arrow_service_pb2

_Bars = Iterator[arrow_service_pb2.BatchArrowRecords]

class _StreamStream:
    def __call__(
        self,
        request_iterator: _Bars,
        timeout: float | None = ...,
        metadata: Any = ...,
        credentials: Any = ...,
        wait_for_ready: bool | None = ...,
        compression: Any = ...,
    ) -> Any: ...

class ArrowTracesServiceStub:
    ArrowTraces: _StreamStream
    def __init__(self, channel: Any) -> None: ...

class ArrowLogsServiceStub:
    ArrowLogs: _StreamStream
    def __init__(self, channel: Any) -> None: ...

class ArrowMetricsServiceStub:
    ArrowMetrics: _StreamStream
    def __init__(self, channel: Any) -> None: ...

class ArrowTracesServiceServicer:
    def ArrowTraces(self, request_iterator: _Bars, context: Any) -> Any: ...

class ArrowLogsServiceServicer:
    def ArrowLogs(self, request_iterator: _Bars, context: Any) -> Any: ...

class ArrowMetricsServiceServicer:
    def ArrowMetrics(self, request_iterator: _Bars, context: Any) -> Any: ...

def add_ArrowTracesServiceServicer_to_server(servicer: ArrowTracesServiceServicer, server: Any) -> None: ...
def add_ArrowLogsServiceServicer_to_server(servicer: ArrowLogsServiceServicer, server: Any) -> None: ...
def add_ArrowMetricsServiceServicer_to_server(servicer: ArrowMetricsServiceServicer, server: Any) -> None: ...
