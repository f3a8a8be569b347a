"""What an exporter and the forwarder agree on (design.md, "exporter"): nothing here imports grpc.

Owns: `Outgoing` (one spooled batch on its way out), the `Delivery` verdict an exporter returns for
it, the `Exporter` protocol, the typed `Mode` an exporter reports per signal, and `QueuedVerdicts`,
the verdict queue both unary OTLP exporters share.

Exporters are asynchronous because OTAP is a window of in-flight BARs on a stream: `submit()`
hands over one batch (it may block for a unary call), `poll()` returns the verdicts reached so
far, and the `wake` callback given at construction is called from any thread when a verdict
arrives so the forwarder stops waiting. Only an `ok` Delivery lets the forwarder delete a batch.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Literal, Protocol

from edgecollect.format import SIGNALS as SIGNALS  # re-exported: the exporters name the signals from here
from edgecollect.format import Signal as Signal

if TYPE_CHECKING:
    import pyarrow as pa

    from edgecollect.exporters.upstream import UpstreamConfig
    from edgecollect.telemetry import Telemetry

Outcome = Literal["ok", "retry", "reject"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One spooled batch on its way out."""

    spool_id: int
    signal: Signal
    batch: pa.RecordBatch
    points: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """An exporter's verdict on one spooled batch. Only `ok` lets the forwarder delete it."""

    spool_id: int
    outcome: Outcome
    reason: str = "ok"  # counter label from a closed set: grpc code name, "connect", "tls", "http_4xx", ...
    detail: str = ""  # human-readable; may name endpoint and files, never a header value
    via: str = ""  # the protocol that carried it: otap | otlp_grpc | otlp_http
    backoff: bool = True  # retry only: wait first (False: resend at once, e.g. stream rotation)
    reachable: bool = True  # retry only: False when no connection could be made at all
    retry_after_s: float | None = None  # the peer's own hint (HTTP Retry-After)


class Mode(str, Enum):
    """How one signal is being sent right now. A str, so status stays plain JSON text; code reads
    `.fallback` and `.protocol` instead of matching the text."""

    OTAP = "otap"
    OTLP_GRPC = "otlp_grpc"
    OTLP_HTTP = "otlp_http"
    OTLP_GRPC_FALLBACK = "otlp_grpc (fallback)"  # OTAP configured, the peer does not serve Arrow

    def __str__(self) -> str:
        return str(self.value)

    @property
    def fallback(self) -> bool:
        return self is Mode.OTLP_GRPC_FALLBACK

    @property
    def protocol(self) -> str:
        """The protocol on the wire, as Delivery.via and the counters name it."""
        return str(Mode.OTLP_GRPC.value if self.fallback else self.value)


class Exporter(Protocol):
    protocol: str

    def submit(self, item: Outgoing) -> None: ...

    def poll(self) -> list[Delivery]: ...

    def modes(self) -> dict[Signal, Mode]: ...

    def wake_at(self) -> float | None:
        """Monotonic time at which poll() has something to do without a verdict arriving (close an
        idle connection), or None."""
        ...

    def close(self, timeout_s: float) -> list[Delivery]: ...


ExporterFactory = Callable[["UpstreamConfig", "Telemetry", Callable[[], None]], Exporter]


class QueuedVerdicts:
    """What both unary OTLP exporters share: verdicts queue up as they are reached, one mode."""

    protocol: str
    mode: Mode

    def __init__(self) -> None:
        self._done: collections.deque[Delivery] = collections.deque()

    def poll(self) -> list[Delivery]:
        out = []
        while self._done:
            out.append(self._done.popleft())
        return out

    def modes(self) -> dict[Signal, Mode]:
        return {signal: self.mode for signal in SIGNALS}

    def wake_at(self) -> float | None:
        return None
