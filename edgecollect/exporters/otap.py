"""OTAP transport: ArrowMetrics / ArrowLogs bidirectional gRPC streams (otap-wire.md §1, §2, §9).

Owns, per signal, the current stream and the streams being retired: one encoder per stream
(otap_encode.OtapStreamEncoder; batch ids and IPC state restart with every stream), a window of
unanswered BARs, a reader thread turning BatchStatus messages into Deliveries, and the fallback to
OTLP/gRPC on the same channel.

Decisions (each one the spec leaves to us):
- BatchStatus OK → ok; INVALID_ARGUMENT → reject (quarantine, the rest flows); UNAVAILABLE,
  DEADLINE_EXCEEDED, CANCELED, ABORTED, RESOURCE_EXHAUSTED and the auth codes → retry with backoff.
  INTERNAL or an unknown code → retry, and one strike against that batch.
- A stream that ends while BARs are unanswered: all of them are resent on a fresh stream with a
  fresh encoder. If it ended with INTERNAL (the receiver's decode failure), the lowest unanswered
  BAR is the culprit — the receiver decodes in order and answers every BAR before the failing one
  — and gets a strike. A batch with `poison_threshold` strikes is an encoder bug, not bad data: it
  is sent once via OTLP/gRPC (logged as such); if OTLP rejects it or is not served it is quarantined.
- An encoder exception: the stream's encoder switches to self-contained payloads (strategy B) and
  tries again; if that fails too the batch goes via OTLP/gRPC as above.
- UNIMPLEMENTED on a stream: that signal goes to unary OTLP/gRPC Export on the same channel, and
  Arrow is tried again after `arrow_reprobe_interval` (the Go exporter never re-probes).
- Rotation: a stream older than `max_stream_lifetime` (minus 0–5 % jitter, like the Go exporter)
  takes no new BARs; it is half-closed and its reader keeps collecting statuses until the server
  ends it, while new BARs go on a fresh stream at once. A backlog therefore drains on streams that
  each live the full lifetime, reusing their dictionaries, not on one stream per batch.
- No BatchStatus for `timeout` after a BAR was sent: the stream is cancelled and its BARs resent.
- Nothing sent or answered for `close_idle_after`: every stream is half-closed and, once the server
  has ended them, the channel is closed (grpc's threads end with it); the next batch reconnects.

Stream-level auth goes in the call metadata (the receiver merges it into every batch), so the BAR
`headers` field stays empty and no HPACK state is needed.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from edgecollect.errors import UpstreamFault
from edgecollect.exporters.contracts import Delivery, Mode, Outgoing
from edgecollect.exporters.grpcplumbing import CallCompression, FallbackFactory, GrpcChannel, rpc_failure
from edgecollect.exporters.proto import arrow_service_pb2 as pb
from edgecollect.exporters.upstream import UpstreamConfig
from edgecollect.format import SIGNALS, Signal
from edgecollect.telemetry import Telemetry

log = logging.getLogger(__name__)

EncoderFactory = Callable[[Signal], Any]  # returns an OtapStreamEncoder (or a test double of it)

_RETRY_STATUS = {pb.UNAVAILABLE, pb.DEADLINE_EXCEEDED, pb.CANCELED, pb.ABORTED, pb.RESOURCE_EXHAUSTED,
                 pb.UNAUTHENTICATED, pb.PERMISSION_DENIED}


def default_encoder(signal: Signal) -> Any:
    from edgecollect.exporters.otap_encode import OtapStreamEncoder

    return OtapStreamEncoder(signal)


@dataclass(slots=True)
class _Sent:
    item: Outgoing
    at: float


class _Stream:
    """One Arrow RPC. The forwarder thread sends; a reader thread collects statuses and the end."""

    def __init__(self, owner: OtapExporter, signal: Signal, channel: grpc.Channel, encoder: Any,
                 lifetime_s: float, metadata: tuple[tuple[str, str], ...]) -> None:
        self.owner = owner
        self.signal = signal
        self.encoder = encoder
        self.opened_at = time.monotonic()
        self.expires_at = self.opened_at + lifetime_s
        self.pending: dict[int, _Sent] = {}
        self.answered = 0
        self.closing = False
        self.done = False
        self.cancel_reason = ""
        self.end: tuple[str, str, bool, bool] = ("stream_ended", "Arrow stream ended", True, True)
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[pb.BatchArrowRecords | None] = queue.SimpleQueue()
        service = "ArrowMetricsService/ArrowMetrics" if signal == "metrics" else "ArrowLogsService/ArrowLogs"
        method = channel.stream_stream(
            f"/opentelemetry.proto.experimental.arrow.v1.{service}",
            request_serializer=pb.BatchArrowRecords.SerializeToString,
            response_deserializer=pb.BatchStatus.FromString,
        )
        self.compression = owner.compression.current
        self._call: Any = method(self._outgoing(), metadata=metadata, compression=self.compression)
        self._reader = threading.Thread(target=self._read, name=f"otap-{signal}", daemon=True)
        self._reader.start()

    def _outgoing(self) -> Iterator[pb.BatchArrowRecords]:
        while True:
            bar = self._requests.get()
            if bar is None:
                return  # half-close
            yield bar

    def send(self, item: Outgoing, bar: pb.BatchArrowRecords) -> bool:
        """Queue one BAR; False if the stream has already ended (caller opens a new one)."""
        with self._lock:
            if self.done or self.closing:
                return False
            self.pending[bar.batch_id] = _Sent(item, time.monotonic())
        self._requests.put(bar)
        return True

    def half_close(self) -> None:
        with self._lock:
            self.closing = True
        self._requests.put(None)

    def cancel(self, reason: str) -> None:
        with self._lock:
            if self.done:
                return
            self.cancel_reason = reason
        self._call.cancel()

    def oldest_wait_s(self, now: float) -> float:
        with self._lock:
            return max((now - s.at for s in self.pending.values()), default=0.0)

    def join(self, timeout_s: float) -> None:
        self._reader.join(timeout_s)

    def _read(self) -> None:
        code: grpc.StatusCode | None = None
        details = ""
        try:
            for status in self._call:
                self._on_status(status)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
        except Exception as exc:  # noqa: BLE001 - the reader must always report the stream's end
            code, details = grpc.StatusCode.UNKNOWN, repr(exc)
        self._finish(code, details)

    def _on_status(self, status: pb.BatchStatus) -> None:
        with self._lock:
            sent = self.pending.pop(status.batch_id, None)
            self.answered += 1
        if sent is None:
            log.warning("otap %s: BatchStatus for unknown batch id %d ignored", self.signal, status.batch_id)
            return
        item, cfg = sent.item, self.owner.cfg
        code = status.status_code
        name = pb.StatusCode.Name(code) if code in pb.StatusCode.values() else str(code)
        detail = f"{cfg.endpoint} answered {name} for spool batch {item.spool_id}: {status.status_message}"
        if code == pb.OK:
            d = Delivery(item.spool_id, "ok", via="otap")
        elif code == pb.INVALID_ARGUMENT:
            d = Delivery(item.spool_id, "reject", "invalid_argument", detail, "otap")
        elif code in _RETRY_STATUS:
            d = Delivery(item.spool_id, "retry", name.lower(), detail, "otap")
        else:
            self.owner.strike(item.spool_id)
            d = Delivery(item.spool_id, "retry", "internal", detail, "otap")
        self.owner.post(d)

    def _finish(self, code: grpc.StatusCode | None, details: str) -> None:
        with self._lock:
            self.done = True  # with the snapshot, so send() can never add a BAR nobody will answer
            left = sorted(self.pending.items())
            self.pending.clear()
            answered, closing, cancelled = self.answered, self.closing, self.cancel_reason
        self._requests.put(None)  # let grpc's request-consuming thread leave our generator
        cfg = self.owner.cfg
        backoff, reachable = True, True
        if code is None or (code == grpc.StatusCode.CANCELLED and cancelled == "closed"):
            reason = "stream_restarting" if closing or cancelled else "stream_ended"
            detail, backoff = f"{cfg.endpoint}: Arrow stream ended with BARs unanswered", not closing
        elif code == grpc.StatusCode.CANCELLED and cancelled:
            reason = cancelled
            detail = f"{cfg.endpoint}: no BatchStatus within {cfg.timeout:g}s; stream cancelled"
        elif self.owner.compression.refused(code, details, self.compression):
            # A server without our codec: not a reason to leave Arrow, nor to back off.
            reason, backoff = "compression", False
            detail = f"{cfg.endpoint} cannot decompress gzip: {details}"
        elif code == grpc.StatusCode.UNIMPLEMENTED and answered == 0 and "grpc-encoding" not in details:
            # (An unsupported `compression` also answers UNIMPLEMENTED: that is config, not Arrow.)
            self.owner.unimplemented(self.signal, self, details)
            reason, backoff = "unimplemented", False
            detail = f"{cfg.endpoint} does not serve Arrow {self.signal}"
        else:
            reason, detail, reachable = rpc_failure(cfg, code, details)
            reachable = reachable or answered > 0
            if code == grpc.StatusCode.INTERNAL and left:
                self.owner.strike(left[0][1].item.spool_id)
                reason = "decode_error"
        self.end = (reason, detail, reachable, backoff)
        self.owner.stream_ended(self, reason if code is not None else "ok")
        for _, sent in left:
            self.owner.post(Delivery(sent.item.spool_id, "retry", reason, detail, "otap",
                                     backoff=backoff, reachable=reachable))
        self.owner.post(None)  # a stream that ends idle still wakes the forwarder


@dataclass(slots=True)
class _Lane:
    signal: Signal
    stream: _Stream | None = None
    retiring: list[_Stream] | None = None
    fallback_until: float | None = None  # monotonic time of the next Arrow re-probe


class OtapExporter:
    protocol = "otap"

    def __init__(self, cfg: UpstreamConfig, telemetry: Telemetry, wake: Callable[[], None], *,
                 fallback: FallbackFactory, encoder_factory: EncoderFactory = default_encoder,
                 rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.channel = GrpcChannel(cfg)
        self._wake = wake
        self._rng = rng or random.Random()
        self._encoder_factory = encoder_factory
        self._otlp = fallback(cfg, telemetry, wake, self.channel)  # unary OTLP/gRPC on this channel
        self.compression = CallCompression(cfg, "OTAP")
        self._lanes = {s: _Lane(s, retiring=[]) for s in SIGNALS}
        self._events: collections.deque[Delivery | tuple[str, Signal, _Stream, str]] = collections.deque()
        self._strikes: dict[int, int] = {}
        self._strike_lock = threading.Lock()
        self._streams = telemetry.counter("upstream", "streams", "outcome")
        self._fallbacks = telemetry.counter("upstream", "fallbacks", "reason")
        self._reprobes = telemetry.counter("upstream", "arrow_reprobes")
        self._encode_errors = telemetry.counter("upstream", "encode_errors")
        self._bytes = telemetry.counter("upstream", "bytes_sent", "protocol", unit="By")

    # -- called from reader threads -----------------------------------------------------------

    def post(self, delivery: Delivery | None) -> None:
        if delivery is not None:
            self._events.append(delivery)
            self.channel.touch()
        self._wake()

    def strike(self, spool_id: int) -> None:
        with self._strike_lock:
            self._strikes[spool_id] = self._strikes.get(spool_id, 0) + 1

    def unimplemented(self, signal: Signal, stream: _Stream, details: str) -> None:
        self._events.append(("unimplemented", signal, stream, details))

    def stream_ended(self, stream: _Stream, outcome: str) -> None:
        self._streams.inc(outcome)

    # -- the forwarder's side -----------------------------------------------------------------

    def submit(self, item: Outgoing) -> None:
        lane = self._lanes[item.signal]
        with self._strike_lock:
            strikes = self._strikes.get(item.spool_id, 0)
        if strikes >= self.cfg.poison_threshold:
            log.error("otap: spool batch %d ended %d Arrow streams with decode errors; sending it via "
                      "OTLP/gRPC instead (an OTAP encoder bug: please report it)", item.spool_id, strikes)
            self._fallbacks.inc("decode_error")
            self._otlp.submit(item, permanent_unimplemented=True)
            return
        if lane.fallback_until is not None:
            if time.monotonic() < lane.fallback_until:
                self._otlp.submit(item)
                return
            lane.fallback_until = None
            self._reprobes.inc()
            log.info("otap: re-probing Arrow %s on %s", item.signal, self.cfg.endpoint)
        for _ in range(2):
            try:
                stream = self._stream_for(lane)
            except UpstreamFault as exc:
                self.post(Delivery(item.spool_id, "retry", "config", str(exc), "otap", reachable=False))
                return
            bar = self._encode(stream, item)
            if bar is None:
                self._fallbacks.inc("encode_error")
                self._otlp.submit(item, permanent_unimplemented=True)
                return
            if stream.send(item, bar):
                self.channel.touch()
                self._bytes.inc("otap", bar.ByteSize())
                return
            lane.stream = None  # it ended under us; the batch goes on a fresh stream
        # Two fresh streams ended before a BAR could go out (typically: connection refused).
        stream.join(1.0)  # its reader is finishing; wait for the reason it records
        reason, detail, reachable, backoff = stream.end
        self.post(Delivery(item.spool_id, "retry", reason, detail, "otap", backoff=backoff,
                           reachable=reachable))

    def _encode(self, stream: _Stream, item: Outgoing) -> pb.BatchArrowRecords | None:
        for attempt in (1, 2):
            try:
                bar: pb.BatchArrowRecords = stream.encoder.encode(item.batch)
                return bar
            except Exception as exc:  # noqa: BLE001 - an encoder bug must cost one batch's route, not the agent
                self._encode_errors.inc()
                if attempt == 2:
                    log.error("otap: encoding spool batch %d failed again in self-contained mode (%s); "
                              "sending it via OTLP/gRPC", item.spool_id, exc)
                    return None
                log.error("otap: encoding spool batch %d failed (%s); this stream switches to "
                          "self-contained payloads", item.spool_id, exc)
                stream.encoder.reset_to_self_contained()
        return None

    def _stream_for(self, lane: _Lane) -> _Stream:
        stream = lane.stream
        if stream is not None and stream.done:
            stream = lane.stream = None
        if stream is not None and time.monotonic() >= stream.expires_at:
            self._retire(lane, stream)
            stream = None
        if stream is None:
            channel, metadata = self.channel.get(), self.channel.metadata()
            lifetime = self.cfg.max_stream_lifetime * (1.0 - self._rng.uniform(0.0, 0.05))
            stream = _Stream(self, lane.signal, channel, self._encoder_factory(lane.signal), lifetime,
                             metadata)
            lane.stream = stream
            self._streams.inc("opened")
        return stream

    def _retire(self, lane: _Lane, stream: _Stream) -> None:
        stream.half_close()
        assert lane.retiring is not None
        lane.retiring.append(stream)
        if lane.stream is stream:
            lane.stream = None
        self._streams.inc("recycled")

    def poll(self) -> list[Delivery]:
        now = time.monotonic()
        unreachable = False
        for lane in self._lanes.values():
            assert lane.retiring is not None
            lane.retiring = [s for s in lane.retiring if not s.done]
            current = lane.stream
            if current is not None and not current.done and now >= current.expires_at and not current.pending:
                self._retire(lane, current)  # idle and old: let it go before the server cuts it
            for stream in [*lane.retiring, *([lane.stream] if lane.stream else [])]:
                if stream.oldest_wait_s(now) > self.cfg.timeout:
                    stream.cancel("timeout")
        out: list[Delivery] = []
        while self._events:
            event = self._events.popleft()
            if isinstance(event, Delivery):
                out.append(event)
                unreachable |= event.outcome == "retry" and not event.reachable
                if event.outcome != "retry":
                    with self._strike_lock:
                        self._strikes.pop(event.spool_id, None)
            else:
                self._switch_to_otlp(*event[1:])
        for d in self._otlp.poll():
            out.append(d)
            unreachable |= d.outcome == "retry" and not d.reachable
            if d.outcome != "retry":
                with self._strike_lock:
                    self._strikes.pop(d.spool_id, None)
        if unreachable and not any(lane.stream and not lane.stream.done for lane in self._lanes.values()):
            self.channel.reset()
        self._close_when_idle(now)
        return out

    def _live_streams(self) -> list[_Stream]:
        out: list[_Stream] = []
        for lane in self._lanes.values():
            assert lane.retiring is not None
            out += [s for s in [*lane.retiring, *([lane.stream] if lane.stream else [])] if not s.done]
        return out

    def _close_when_idle(self, now: float) -> None:
        """Nothing sent or answered for close_idle_after: half-close the streams, and once the server
        has ended them close the channel. A half-closed stream the server leaves open is cancelled
        after `timeout` more."""
        idle_at = self.channel.idle_deadline()
        if idle_at is None or now < idle_at:
            return
        live = self._live_streams()
        if any(s.pending for s in live):
            return  # unanswered BARs: the timeout in poll() handles those
        for lane in self._lanes.values():
            if lane.stream is not None and not lane.stream.done:
                assert lane.retiring is not None
                lane.stream.half_close()
                lane.retiring.append(lane.stream)
                self._streams.inc("closed_idle")
            lane.stream = None
        if not live:
            self.channel.reset()
        elif now >= idle_at + self.cfg.timeout:
            for stream in live:
                stream.cancel("closed")

    def wake_at(self) -> float | None:
        """The idle deadline while the channel is open; past it, only the streams' end (which wakes the
        forwarder) or the cancel deadline is left to wait for."""
        idle_at = self.channel.idle_deadline()
        if idle_at is None:
            return None
        if time.monotonic() < idle_at:
            return idle_at
        if self._live_streams():  # half-closed: their end wakes the forwarder; else the cancel
            return max(idle_at + self.cfg.timeout, time.monotonic() + 1.0)
        return idle_at

    def _switch_to_otlp(self, signal: Signal, stream: _Stream, details: str) -> None:
        lane = self._lanes[signal]
        if lane.stream is stream:
            lane.stream = None
        if lane.fallback_until is None:
            self._fallbacks.inc("unimplemented")
            log.warning("otap: %s answered UNIMPLEMENTED for Arrow %s (%s); sending %s via OTLP/gRPC "
                        "and trying Arrow again in %gs", self.cfg.endpoint, signal, details, signal,
                        self.cfg.arrow_reprobe_interval)
        lane.fallback_until = time.monotonic() + self.cfg.arrow_reprobe_interval

    def modes(self) -> dict[Signal, Mode]:
        return {s: Mode.OTLP_GRPC_FALLBACK if lane.fallback_until is not None else Mode.OTAP
                for s, lane in self._lanes.items()}

    def close(self, timeout_s: float) -> list[Delivery]:
        """Half-close every stream, collect the statuses that arrive within timeout_s, then cancel."""
        streams = []
        for lane in self._lanes.values():
            assert lane.retiring is not None
            streams += lane.retiring + ([lane.stream] if lane.stream else [])
            lane.stream, lane.retiring = None, []
        for stream in streams:
            stream.half_close()
        deadline = time.monotonic() + timeout_s
        for stream in streams:
            stream.join(max(0.0, deadline - time.monotonic()))
        for stream in streams:
            stream.cancel("closed")
            stream.join(1.0)
        out = self.poll()
        self.channel.close()
        return out
