"""The broker session: paho-mqtt 2.x with manual acks, reconnects, and acks that follow durability.

Threading: `run()` drives paho's network loop itself (`client.loop()`), so `on_message`, the parsers
and every `client.ack()` run on this source's thread; paho is not safe for writes from two threads.
The batcher calls our durability listener from its own thread; the listener only records the
highest durable token, and the loop thread sends the PUBACKs (in arrival order, MQTT 3.1.1 4.6).

Delivery tokens: every QoS>=1 message gets the next integer token, passed to `ctx.emit`; it is
held in a bounded pending queue (token, connection generation, mid, qos) until the ring reports
that everything up to a token is durable. A message that yields nothing is acked at once when no
earlier message is still pending, else with its predecessors. Pending entries of a lost
connection are forgotten (the broker redelivers them: duplicates, never loss).

In-flight cap: paho cannot pause reads, so the cap is the broker's: with MQTT 5 we send Receive
Maximum = `max_unacked`; with 3.1.1 the broker's own limit applies (mosquitto
`max_inflight_messages`, default 20). When that window holds up the stream we ask the batcher to
cut early (`ctx.request_flush`); pacing.py decides when.

Identity: the default client id is made from the source's name (`mqtt.<name>`, see
sources/registry.py), never from its place in the file, so the broker's persistent session
survives reordering the [[sources.mqtt]] tables.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgecollect.configtypes import resolve_secret
from edgecollect.errors import SourceFault
from edgecollect.model import Parsed
from edgecollect.sources.base import SourceContext
from edgecollect.sources.mqtt.closing import finish
from edgecollect.sources.mqtt.config import MqttConfig
from edgecollect.sources.mqtt.emit import KeyGuard, PointEmitter
from edgecollect.sources.mqtt.formats import DEFAULT_PREFIXES, PARSERS, Message, Metadata, Parser, Rule
from edgecollect.sources.mqtt.netio import ChunkedClient, flush_writes, raw_socket
from edgecollect.sources.mqtt.pacing import FlushPacer

log = logging.getLogger(__name__)

FLUSH_REQUEST_EVERY_S = 0.05  # at most one early-cut request this often
# PUBLISH bytes besides the payload: fixed header, topic, packet id, properties. A topic longer than
# this allowance could hide a payload just under max_payload; such topics are not seen in practice.
PACKET_OVERHEAD = 4096
MQTT_MAX_PACKET = 268_435_455  # the largest Remaining Length MQTT can encode


class MqttSource:
    def __init__(self, cfg: MqttConfig, ctx: SourceContext) -> None:
        self.name = ctx.name
        self._cfg = cfg
        self._ctx = ctx
        self._rules: list[tuple[Rule, Parser]] = [
            (
                Rule.build(sub, DEFAULT_PREFIXES[sub.format], cfg.states, cfg.retained,
                           cfg.retained_max_age, cfg.max_depth),
                PARSERS[sub.format],
            )
            for sub in cfg.subscribe
        ]
        self._meta = Metadata()
        self._messages = ctx.counter("messages", "outcome")
        self._connects = ctx.counter("connects", "outcome")
        self._acks = ctx.counter("acks", "outcome")
        self._points = PointEmitter(ctx, KeyGuard(cfg.max_keys_per_device, cfg.max_devices),
                                    ctx.counter("points_rejected", "reason"))
        self._lock = threading.Lock()
        self._pending: deque[tuple[int, int, int, int]] = deque()  # token, generation, mid, qos
        self._durable = 0
        self._token = 0
        self._generation = 0
        self._connected = False
        self._disconnecting = False  # our own DISCONNECT is going out: close without a reset
        self._pacer = FlushPacer(cfg.max_unacked)
        self._last_flush_request = 0.0
        self._tls_ready = False
        ctx.on_durable(self._on_durable)

    # -- public -------------------------------------------------------------------------------

    def run(self) -> None:
        """Connect, serve, reconnect with capped jittered backoff; return once ctx.stop is set."""
        backoff = self._ctx.backoff(self._cfg.reconnect_min, self._cfg.reconnect_max)
        client = self._build()
        while not self._ctx.stop.is_set():
            try:
                self._connect(client)
            except SourceFault as exc:
                self._note("connect_failed", f"mqtt {self._cfg.server}: {exc}")
            else:
                if self._serve(client):
                    backoff.reset()  # the session was up: start backoff afresh
                self._close(client)
            if self._ctx.stop.is_set():
                break
            if self._ctx.wait(backoff.next()):
                break

    def pending(self) -> int:
        """Messages received at QoS>=1 and not yet acked (for status and tests)."""
        with self._lock:
            return len(self._pending)

    def handle(self, topic: str, payload: bytes, retained: bool = False, received_ns: int = 0) -> Parsed:
        """Parse one message as the session would (first matching rule); never raises."""
        if len(payload) > self._cfg.max_payload:
            return Parsed(outcome="too_large")
        for rule, parser in self._rules:
            captures = rule.template.match(topic)
            if captures is not None:
                message = Message(topic, payload, captures, retained, received_ns or time.time_ns())
                try:
                    return parser(message, rule, self._meta)
                except Exception:  # a parser bug must cost one message, not the session
                    log.exception("mqtt %s: parser %s failed on %s", self.name, rule.cfg.format, topic)
                    return Parsed(outcome="parser_error")
        return Parsed(outcome="unmatched")

    # -- session ------------------------------------------------------------------------------

    def _client_id(self) -> str:
        if self._cfg.client_id:
            return self._cfg.client_id
        return default_client_id(socket.gethostname(), self.name)

    def _build(self) -> mqtt.Client:
        """One paho client for the source's life: connect() reuses it and resets its sockets."""
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        client = ChunkedClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self._client_id(),
            clean_session=None if v5 else cfg.clean_start,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=True,
        )
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_socket_close = self._on_socket_close
        client.connect_timeout = cfg.connect_timeout
        return client

    def _connect(self, client: mqtt.Client) -> None:
        cfg = self._cfg
        v5 = cfg.protocol == "5"
        if cfg.username:
            try:
                password = resolve_secret(cfg.password) if cfg.password else None
            except (KeyError, OSError) as exc:
                raise SourceFault(f"password {type(exc).__name__} (see the password setting)") from exc
            client.username_pw_set(cfg.username, password)
        if cfg.tls_enabled and not self._tls_ready:
            try:
                client.tls_set(
                    ca_certs=cfg.tls.ca_file or None,
                    certfile=cfg.tls.cert_file or None,
                    keyfile=cfg.tls.key_file or None,
                    cert_reqs=ssl.CERT_NONE if cfg.tls.insecure else ssl.CERT_REQUIRED,
                )
                client.tls_insecure_set(cfg.tls.insecure)
                self._tls_ready = True  # paho refuses a second tls_set on the same client
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise SourceFault(f"TLS setup: {exc}") from exc
        properties = None
        if v5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = 0 if cfg.clean_start else int(cfg.session_expiry)
            properties.ReceiveMaximum = cfg.max_unacked
            # The broker must not send us a packet larger than this (MQTT 5, 3.1.2.11.4): a payload
            # over max_payload is then never read into memory at all (mosquitto drops it for us).
            properties.MaximumPacketSize = min(MQTT_MAX_PACKET, int(cfg.max_payload) + PACKET_OVERHEAD)
        try:
            if v5:
                client.connect(cfg.host, cfg.port, int(cfg.keepalive), clean_start=cfg.clean_start,
                               properties=properties)
            else:
                client.connect(cfg.host, cfg.port, int(cfg.keepalive))
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._connects.inc("failed")
            raise SourceFault(f"connect to {cfg.host}:{cfg.port}: {exc}") from exc

    def _serve(self, client: mqtt.Client) -> bool:
        """Run the network loop until the connection ends or we stop; True if CONNACK was accepted."""
        was_up = False
        while not self._ctx.stop.is_set():
            with self._lock:
                waiting = bool(self._pending)
            rc = client.loop(timeout=0.02 if waiting else 0.5)
            was_up = was_up or self._connected
            self._ack_durable(client)
            flush_writes(client)
            if waiting:
                self._maybe_request_flush()
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                reason = mqtt.error_string(rc)
                self._note("disconnected", f"mqtt {self._cfg.server}: connection lost ({reason})")
                self._connected = False
                return was_up
        # Stopping: give the runtime's final flush a moment to make pending messages durable.
        deadline = time.monotonic() + 2.0
        while self._connected and time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    break
            self._maybe_request_flush(stopping=True)
            if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
            self._ack_durable(client)
            flush_writes(client)
        return was_up

    def _close(self, client: mqtt.Client) -> None:
        try:
            if self._connected:
                self._disconnecting = True
                client.disconnect()
                client.loop(timeout=0.1)  # let the DISCONNECT out
        except (OSError, ValueError):
            pass
        finally:
            self._connected = False
            self._disconnecting = False

    # -- paho callbacks (on the run() thread) ------------------------------------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any,
    ) -> None:
        if reason.is_failure:
            self._connects.inc("refused")
            self._note("refused", f"mqtt {self._cfg.server}: connection refused: {reason}")
            return
        self._connects.inc("ok")
        with self._lock:
            self._generation += 1
            if self._pending:  # the broker redelivers these on this session: duplicates, not loss
                self._acks.inc("abandoned", len(self._pending))
                self._pending.clear()
        self._connected = True
        filters: dict[str, int] = {}
        for rule, _ in self._rules:
            qos = rule.cfg.qos if rule.cfg.qos is not None else self._cfg.qos
            filters[rule.template.filter] = max(qos, filters.get(rule.template.filter, 0))
        if filters:
            client.subscribe(list(filters.items()))
        log.info("mqtt %s: connected to %s, subscribed %s", self.name, self._cfg.server, sorted(filters))

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any,
    ) -> None:
        for reason in reasons:
            if reason.is_failure:
                self._connects.inc("subscribe_refused")
                self._note("subscribe_refused", f"mqtt {self._cfg.server}: subscription refused: {reason}")
            else:
                self._connects.inc("subscribed")

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any,
    ) -> None:
        self._connected = False

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Only after our DISCONNECT: a lost connection has nothing to save and must not linger.
        if self._disconnecting:
            finish(raw_socket(sock))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._pacer.message(time.monotonic())
        token = 0
        if msg.qos > 0:
            self._token += 1
            token = self._token
        if len(msg.payload) > self._cfg.max_payload:
            # MQTT 3.1.1 cannot refuse it: judged before any copy or decode, acked below, never parsed.
            # paho's own buffers for it are freed on return and, being large, unmapped (heap.py).
            parsed = Parsed(outcome="too_large")
        else:
            try:
                topic = msg.topic
            except UnicodeDecodeError:
                parsed = Parsed(outcome="not_utf8")
            else:
                parsed = self.handle(topic, bytes(msg.payload), bool(msg.retain))
        self._messages.inc(parsed.outcome)
        if parsed.outcome not in ("ok", "log", "metadata", "availability"):
            self._note(parsed.outcome, f"mqtt {self.name}: {parsed.outcome} on {_preview(msg)}")
        emitted = self._emit(parsed, token)
        if token:
            with self._lock:
                if not emitted and not self._pending:
                    ack_now = True
                else:
                    self._pending.append((token, self._generation, msg.mid, msg.qos))
                    ack_now = False
            if ack_now:
                client.ack(msg.mid, msg.qos)
                self._acks.inc("immediate")

    def _emit(self, parsed: Parsed, token: int) -> bool:
        """Hand points and logs to the ring under `token`; True if anything was buffered."""
        accepted = self._points.emit(parsed.points, token) if parsed.points else 0
        for record in parsed.logs:
            self._ctx.emit_log(record, token)
        if token and not accepted:
            self._ctx.note_token(token)  # covers a message whose points were all refused
        return accepted > 0 or bool(parsed.logs)

    # -- durability -----------------------------------------------------------------------------

    def _on_durable(self, token: int) -> None:
        """Batcher thread: everything up to `token` is on disk. Only record it; run() acks."""
        with self._lock:
            if token > self._durable:
                self._durable = token

    def _ack_durable(self, client: mqtt.Client) -> None:
        acks: list[tuple[int, int]] = []
        with self._lock:
            pending, upto, generation = self._pending, self._durable, self._generation
            while pending and pending[0][0] <= upto:
                _, gen, mid, qos = pending.popleft()
                if gen == generation and self._connected:
                    acks.append((mid, qos))
                else:
                    self._acks.inc("abandoned")
        for mid, qos in acks:
            client.ack(mid, qos)
        if acks:
            self._acks.inc("durable", len(acks))

    def _maybe_request_flush(self, stopping: bool = False) -> None:
        now = time.monotonic()
        if now - self._last_flush_request < FLUSH_REQUEST_EVERY_S:
            return
        with self._lock:
            owed = len(self._pending)
        reason = ("stopping" if owed else None) if stopping else self._pacer.reason(owed, now)
        if reason is None:
            return
        self._last_flush_request = now
        self._ctx.request_flush(reason)

    # -- logging --------------------------------------------------------------------------------

    def _note(self, what: str, message: str) -> None:
        """A warning per kind of trouble, counted and rate-limited by the context's event log."""
        self._ctx.event(what, message)


def default_client_id(hostname: str, source: str) -> str:
    """edgecollect-<hostname>-<source>, in the characters every broker accepts, at most 64; a longer
    one keeps a hash of the whole, so two sources on one broker never share a session."""
    raw = re.sub(r"[^A-Za-z0-9_.-]", "-", f"edgecollect-{hostname}-{source}")
    if len(raw) <= 64:
        return raw
    return raw[:55] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]


def _preview(msg: mqtt.MQTTMessage) -> str:
    try:
        topic = msg.topic
    except UnicodeDecodeError:
        topic = "<invalid UTF-8 topic>"
    return f"{topic} ({len(msg.payload)} bytes: {msg.payload[:48]!r})"
