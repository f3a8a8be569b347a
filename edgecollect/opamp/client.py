"""The OpAMP agent side over plain HTTP polling (opamp.proto, "Plain HTTP Transport").

One thread per agent process, owned by the supervisor so that it outlives config reloads. Every
`heartbeat` (and at once when health changes or a remote config status is due) it POSTs an
AgentToServer and handles the ServerToAgent answer. It never touches the data path: the only thing
it can do to the agent is ask the supervisor to reload with a config that has already passed the
loader `check-config` uses.

Remote config flow: key `edgecollect.toml` of the AgentConfigMap, content type `application/toml`
→ `config.loads` (FILE:LINE errors → FAILED, nothing applied) → staged durably in the state dir →
supervisor reload; a config that fails to start is rolled back by the supervisor and reported
FAILED; one that starts is committed as `remote.toml` and reported APPLIED. The server is not
trusted to be up: while it is away the agent keeps collecting and retries with capped backoff.

Why not the PyPI `opentelemetry-opamp-client`: it is a 0.x beta whose API lives in a private
module (`opentelemetry._opamp`), it brings `requests` and `opentelemetry-api` to a box that needs
neither, runs two threads for what one poll loop does, and takes only a CA path for TLS, not our
`[upstream.tls]`-shaped options. The messages are generated from opamp-go's schema instead
(proto/generate.sh) and the transport is ~40 lines of urllib.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from edgecollect import __version__
from edgecollect.config import Config, loads
from edgecollect.configtypes import resolve_secret
from edgecollect.errors import ConfigError
from edgecollect.opamp import report
from edgecollect.opamp.config import OpampConfig
from edgecollect.opamp.files import RemoteConfigStore, instance_uid
from edgecollect.opamp.proto import opamp_pb2
from edgecollect.statusmodel import AgentStatus, OpampStatus, RemoteConfigStatus

log = logging.getLogger("edgecollect.opamp")

Apply = Callable[[Config], "str | None"]  # reload with this config; None = running, else why not
_TICK_S = 1.0
_HTTP_TIMEOUT_S = 15.0
_CAPS_REPORT = (opamp_pb2.AgentCapabilities_ReportsStatus | opamp_pb2.AgentCapabilities_ReportsEffectiveConfig
                | opamp_pb2.AgentCapabilities_ReportsHealth | opamp_pb2.AgentCapabilities_ReportsRemoteConfig
                | opamp_pb2.AgentCapabilities_ReportsHeartbeat)
_CAPS_ACCEPT = opamp_pb2.AgentCapabilities_AcceptsRemoteConfig
_STATUS_NAMES = {opamp_pb2.RemoteConfigStatuses_UNSET: "unset", opamp_pb2.RemoteConfigStatuses_APPLIED: "applied",
                 opamp_pb2.RemoteConfigStatuses_APPLYING: "applying", opamp_pb2.RemoteConfigStatuses_FAILED: "failed"}


class OpampFault(Exception):
    """The server could not be reached or answered something that is not a ServerToAgent."""


def ssl_context(cfg: OpampConfig) -> ssl.SSLContext | None:
    if cfg.tls.insecure:
        return None
    try:
        ctx = ssl.create_default_context(cafile=cfg.tls.ca_file or None)
        if cfg.tls.cert_file:
            ctx.load_cert_chain(cfg.tls.cert_file, cfg.tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise OpampFault(f"cannot load TLS files (ca_file={cfg.tls.ca_file or '-'}, "
                         f"cert_file={cfg.tls.cert_file or '-'}): {exc}") from exc
    return ctx


def post(cfg: OpampConfig, message: opamp_pb2.AgentToServer) -> opamp_pb2.ServerToAgent:
    headers = {"Content-Type": "application/x-protobuf", "User-Agent": f"edgecollect/{__version__}"}
    try:
        headers.update({k: resolve_secret(v) for k, v in cfg.headers.items()})
    except (KeyError, OSError) as exc:
        raise OpampFault(f"cannot resolve an [opamp] header value: {exc}") from exc
    request = urllib.request.Request(cfg.endpoint, data=message.SerializeToString(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S, context=ssl_context(cfg)) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise OpampFault(f"{cfg.endpoint}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise OpampFault(f"{cfg.endpoint}: {reason}") from exc
    try:
        return opamp_pb2.ServerToAgent.FromString(body)
    except Exception as exc:  # protobuf's DecodeError has no stable import path across versions
        raise OpampFault(f"{cfg.endpoint}: not a ServerToAgent message ({len(body)} bytes)") from exc


def _read_text(cfg: Config) -> str:
    try:
        return Path(cfg.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""  # built-in defaults: an empty TOML document


class OpampClient:
    def __init__(self, cfg: Config, state_dir: Path, agent_status: Callable[[], AgentStatus | None],
                 apply: Apply) -> None:
        self._lock = threading.Lock()
        self._cfg, self._text = cfg, _read_text(cfg)
        self._agent_status = agent_status
        self._apply = apply
        self._uid = instance_uid(state_dir)
        self._state_dir = state_dir
        self._store = RemoteConfigStore(state_dir)
        applied = self._store.applied_hash() if cfg.path == str(self._store.current) else b""
        self._rc_status = opamp_pb2.RemoteConfigStatus(
            last_remote_config_hash=applied,
            status=opamp_pb2.RemoteConfigStatuses_APPLIED if applied else opamp_pb2.RemoteConfigStatuses_UNSET)
        self._seq = 0
        self._full = True  # the next message carries everything (first one, or the server asked)
        self._rc_dirty = True
        self._sent_text: str | None = None
        self._text_in_flight: str | None = None
        self._health_key: tuple[object, ...] = ()
        self._started_ns = time.time_ns()
        self._state, self._error, self._contact_at = "starting", "", 0.0
        self._stop, self._wake = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    # -- supervisor side --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="opamp", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        opamp = self._cfg.opamp
        if opamp is not None and self._state == "connected":
            with contextlib.suppress(OpampFault):  # tell the server we leave on purpose (best effort)
                post(opamp, opamp_pb2.AgentToServer(instance_uid=self._uid, sequence_num=self._seq,
                                                    agent_disconnect=opamp_pb2.AgentDisconnect()))

    def set_running(self, cfg: Config) -> None:
        """The supervisor (re)started the agent with `cfg`: report it as the effective config."""
        text = _read_text(cfg)
        with self._lock:
            self._cfg, self._text = cfg, text
        self._wake.set()

    def status(self) -> OpampStatus:
        """For `edgecollect status`."""
        with self._lock:
            opamp = self._cfg.opamp
            rc = self._rc_status
            return OpampStatus(
                endpoint=opamp.endpoint if opamp else "",
                state=self._state,
                last_error=self._error,
                last_contact_s_ago=round(time.monotonic() - self._contact_at, 1) if self._contact_at else None,
                instance_uid=self._uid.hex(),
                accept_remote_config=bool(opamp and opamp.accept_remote_config),
                remote_config=RemoteConfigStatus(status=_STATUS_NAMES.get(rc.status, "unset"),
                                                 hash=rc.last_remote_config_hash.hex(), error=rc.error_message),
            )

    # -- the poll loop ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff_s = 1.0
        while not self._stop.is_set():
            opamp = self._cfg.opamp
            if opamp is None:
                log.info("opamp: the running config has no [opamp] table: remote management stops")
                self._set_state("off", "")
                return
            message = self._message(opamp)
            try:
                answer = post(opamp, message)
            except OpampFault as exc:
                if self._state != "unreachable":
                    log.warning("opamp: %s (retrying; collection goes on)", exc)
                self._set_state("unreachable", str(exc))
                self._full = True  # the server may have restarted without our state
                self._stop.wait(min(backoff_s, opamp.heartbeat))
                backoff_s = min(backoff_s * 2, opamp.heartbeat)
                continue
            backoff_s = 1.0
            self._sent(message)
            self._handle(answer, opamp)
            self._wait(opamp.heartbeat)

    def _set_state(self, state: str, error: str) -> None:
        with self._lock:
            if state == "connected" and self._state != "connected":
                log.info("opamp: connected to %s", self._cfg.opamp.endpoint if self._cfg.opamp else "?")
            self._state, self._error = state, error
            if state == "connected":
                self._contact_at = time.monotonic()

    def _message(self, opamp: OpampConfig) -> opamp_pb2.AgentToServer:
        status = self._agent_status()
        self._health_key = report.health_key(status)
        caps = _CAPS_REPORT | (_CAPS_ACCEPT if opamp.accept_remote_config else 0)
        msg = opamp_pb2.AgentToServer(instance_uid=self._uid, sequence_num=self._seq, capabilities=caps)
        msg.health.CopyFrom(report.health(status, self._started_ns, self._error_for_health()))
        with self._lock:
            text, rc = self._text, self._rc_status
        if self._full:
            msg.agent_description.CopyFrom(report.description(self._uid))
        if self._full or text != self._sent_text:
            msg.effective_config.CopyFrom(report.effective_config(text))
            self._text_in_flight = text  # what _sent() records, even if set_running() races it
        if self._full or self._rc_dirty:
            msg.remote_config_status.CopyFrom(rc)
        return msg

    def _error_for_health(self) -> str:
        with self._lock:
            rc = self._rc_status
        return rc.error_message if rc.status == opamp_pb2.RemoteConfigStatuses_FAILED else ""

    def _sent(self, message: opamp_pb2.AgentToServer) -> None:
        self._seq += 1
        self._full = False
        if message.HasField("effective_config"):
            self._sent_text = self._text_in_flight
        if message.HasField("remote_config_status"):
            self._rc_dirty = message.remote_config_status != self._rc_status
        self._set_state("connected", "")

    def _handle(self, answer: opamp_pb2.ServerToAgent, opamp: OpampConfig) -> None:
        if answer.HasField("error_response"):
            log.warning("opamp: server error: %s", answer.error_response.error_message)
        if answer.flags & opamp_pb2.ServerToAgentFlags_ReportFullState:
            self._full = True
            self._wake.set()
        if answer.HasField("remote_config"):
            if opamp.accept_remote_config:
                self._remote_config(answer.remote_config)
            else:
                log.debug("opamp: ignoring a remote config: accept_remote_config = false")

    def _wait(self, heartbeat_s: float) -> None:
        """Until the heartbeat, a wake-up (status due, stop) or a change of health."""
        deadline = time.monotonic() + heartbeat_s
        while not self._stop.is_set():
            if self._wake.is_set():
                self._wake.clear()
                return
            if self._rc_dirty or report.health_key(self._agent_status()) != self._health_key:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._wake.wait(min(_TICK_S, left))

    # -- remote config ----------------------------------------------------------------------

    def _set_rc(self, config_hash: bytes, status: int, error: str = "") -> None:
        with self._lock:
            self._rc_status = opamp_pb2.RemoteConfigStatus(
                last_remote_config_hash=config_hash, status=status, error_message=error)  # type: ignore[arg-type]
        self._rc_dirty = True

    def _remote_config(self, remote: opamp_pb2.AgentRemoteConfig) -> None:
        config_hash = remote.config_hash
        with self._lock:
            if config_hash and config_hash == self._rc_status.last_remote_config_hash:
                return  # already applied or already refused: the server repeats itself
        failed = opamp_pb2.RemoteConfigStatuses_FAILED
        item = remote.config.config_map.get(report.CONFIG_KEY)
        if item is None:
            keys = ", ".join(sorted(remote.config.config_map)) or "none"
            return self._set_rc(config_hash, failed, f"no '{report.CONFIG_KEY}' in the config map (keys: {keys})")
        if item.content_type not in ("", report.CONTENT_TYPE):
            wrong = f"content type {item.content_type!r}: expected {report.CONTENT_TYPE}"
            return self._set_rc(config_hash, failed, wrong)
        try:
            text = item.body.decode("utf-8")
            wanted = loads(text, report.CONFIG_KEY).state_dir()
        except UnicodeDecodeError:
            return self._set_rc(config_hash, failed, f"{report.CONFIG_KEY}: not UTF-8 text")
        except ConfigError as exc:
            log.error("opamp: remote config refused: %s", exc)
            return self._set_rc(config_hash, failed, str(exc))
        if wanted != self._state_dir:
            # The state_dir is locked for the life of the process (one agent per state_dir) and holds
            # this client's identity and the applied config: a move needs a restart on the box.
            moved = (f"{report.CONFIG_KEY}: agent.state_dir: a remote config cannot move the state_dir "
                     f"(this agent holds {self._state_dir}; found {wanted}): change it locally and restart")
            log.error("opamp: remote config refused: %s", moved)
            return self._set_rc(config_hash, failed, moved)
        self._set_rc(config_hash, opamp_pb2.RemoteConfigStatuses_APPLYING)
        path = self._store.stage(text, config_hash)
        new_cfg = loads(text, str(path))
        log.info("opamp: applying a remote config (hash %s)", config_hash.hex()[:12])
        why_not = self._apply(new_cfg)
        if why_not is not None:
            self._store.discard()
            log.error("opamp: remote config failed to start, rolled back: %s", why_not)
            return self._set_rc(config_hash, failed,
                                f"validated but failed to start; rolled back to the previous config: {why_not}")
        self._store.commit()
        with self._lock:
            self._text = text
        self._set_rc(config_hash, opamp_pb2.RemoteConfigStatuses_APPLIED)


def blocking_reload(request: Callable[[Config, Callable[[str | None], None]], None],
                    timeout_s: float = 600.0) -> Apply:
    """Turn the supervisor's asynchronous `request_reload(cfg, done)` into `apply(cfg) -> error`."""
    def apply(cfg: Config) -> str | None:
        finished = threading.Event()
        outcome: list[str | None] = []

        def done(error: str | None) -> None:
            outcome.append(error)
            finished.set()

        request(cfg, done)
        if not finished.wait(timeout_s):
            return f"the reload did not finish within {timeout_s:.0f}s"
        return outcome[0]
    return apply
