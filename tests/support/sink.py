"""Build, run and inspect the Go reference OTel-Arrow sink (its Go code is tests/interop/*.go).

The sink decodes Arrow streams with the real Go consumer (``arrow_record.Consumer``)
and serves plain OTLP over gRPC and HTTP. Everything it decoded lands in a
JSON-lines file that this helper parses. See README.md next to this file.

Typical use::

    from tests.support.sink import Sink

    with Sink(tmp_path / "sink.jsonl") as sink:
        exporter_config = {"endpoint": sink.grpc_address}
        ...
        sink.set(mode="unavailable")
        ...
        records = sink.wait_for_records(3)

or, as pytest fixtures imported into a folder's conftest.py: ``go_sink`` (a started sink), or
``make_sink`` (``make_sink(**options)`` -> a Sink not yet started; all stopped at the end).
"""

from __future__ import annotations

import fcntl
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

__all__ = [
    "BINARY",
    "INTEROP_DIR",
    "Record",
    "Sink",
    "SinkError",
    "build_sink",
    "go_available",
    "go_sink",
    "go_sink_binary",
    "make_sink",
    "sink_binary",
]

INTEROP_DIR = Path(__file__).resolve().parents[1] / "interop"
BINARY = INTEROP_DIR / "bin" / "sink"
# Built with -tags nogzip: a gRPC server without the gzip codec, as some OTLP servers are.
BINARY_NO_GZIP = INTEROP_DIR / "bin" / "sink-nogzip"

Record = dict[str, Any]
"""One parsed out-file line (see README.md for the fields)."""

_CONTROL_FIELDS = frozenset(
    {"mode", "random_unavailable", "reject_batch_containing", "drop_stream_after", "ack_delay_ms"}
)


class SinkError(RuntimeError):
    """The sink could not be built, did not start, or refused a control request."""


def go_available() -> bool:
    """True when a ``go`` toolchain is on PATH."""
    return shutil.which("go") is not None


def _sources() -> list[Path]:
    files = sorted(INTEROP_DIR.glob("*.go"))
    files += [INTEROP_DIR / "go.mod", INTEROP_DIR / "go.sum"]
    return [f for f in files if f.exists()]


def _is_fresh(binary: Path) -> bool:
    if not binary.exists():
        return False
    built = binary.stat().st_mtime
    return all(src.stat().st_mtime < built for src in _sources())


def build_sink(
    binary: Path = BINARY, *, tags: tuple[str, ...] = (), force: bool = False, timeout: float = 900.0
) -> Path:
    """Build the sink with ``go build [-tags …]`` unless ``binary`` is newer than every source file.

    Safe to call from several processes at once (a lock file serialises builds).
    Dependencies come from the Go module proxy; the first build from an empty
    build cache takes a minute or two.
    """
    if not force and _is_fresh(binary):
        return binary
    go = shutil.which("go")
    if go is None:
        raise SinkError("the Go toolchain ('go') is not on PATH; it is needed to build the interop sink")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_fresh(binary):
            return binary
        tmp = binary.with_name(binary.name + ".tmp")
        try:
            proc = subprocess.run(
                [go, "build", *(["-tags", ",".join(tags)] if tags else []), "-o", str(tmp), "."],
                cwd=INTEROP_DIR,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise SinkError(f"go build of the sink timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0:
            raise SinkError(f"go build of the sink failed ({proc.returncode}):\n{proc.stderr}")
        tmp.replace(binary)
    return binary


def _address(ready: str, key: str) -> str:
    for part in ready.split():
        if part.startswith(key + "="):
            return part[len(key) + 1 :]
    raise SinkError(f"READY line has no {key}=: {ready!r}")


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


class Sink:
    """A running (or startable) sink subprocess.

    Every keyword argument maps to the flag of the same name (``mode``,
    ``random_unavailable``, ``reject_batch_containing``, ``drop_stream_after``,
    ``ack_delay_ms``, ``otlp_only``, ``seed``, TLS files). Ports default to 0 (any
    free port); after the first start they are pinned, so ``restart()`` comes
    back on the same addresses.
    """

    def __init__(
        self,
        out_path: Path | str | None = None,
        *,
        mode: str = "ok",
        random_unavailable: float = 0.0,
        reject_batch_containing: str = "",
        drop_stream_after: int = 0,
        ack_delay_ms: int = 0,
        otlp_only: bool = False,
        seed: int = 1,
        tls_cert: Path | str | None = None,
        tls_key: Path | str | None = None,
        client_ca: Path | str | None = None,
        grpc_port: int = 0,
        http_port: int = 0,
        control_port: int = 0,
        extra_args: Sequence[str] = (),
        binary: Path | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        if out_path is None:
            self._tmpdir: str | None = tempfile.mkdtemp(prefix="edgecollect-sink-")
            out_path = Path(self._tmpdir) / "sink.jsonl"
        else:
            self._tmpdir = None
        self.out_path = Path(out_path)
        self.log_path = self.out_path.with_name(self.out_path.name + ".stderr.log")
        self.options: dict[str, Any] = {
            "mode": mode,
            "random_unavailable": random_unavailable,
            "reject_batch_containing": reject_batch_containing,
            "drop_stream_after": drop_stream_after,
            "ack_delay_ms": ack_delay_ms,
            "otlp_only": otlp_only,
            "seed": seed,
            "tls_cert": tls_cert,
            "tls_key": tls_key,
            "client_ca": client_ca,
        }
        self.ports = {"grpc": grpc_port, "http": http_port, "control": control_port}
        self.extra_args = list(extra_args)
        self.binary = binary
        self.ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._addresses: dict[str, str] = {}
        self._first_stream = 1

    # -- lifecycle -------------------------------------------------------

    def _argv(self, binary: Path) -> list[str]:
        o = self.options
        argv = [
            str(binary),
            "-out", str(self.out_path),
            "-grpc-port", str(self.ports["grpc"]),
            "-http-port", str(self.ports["http"]),
            "-control-port", str(self.ports["control"]),
            "-mode", str(o["mode"]),
            "-random-unavailable", repr(float(o["random_unavailable"])),
            "-reject-batch-containing", str(o["reject_batch_containing"]),
            "-drop-stream-after", str(int(o["drop_stream_after"])),
            "-ack-delay-ms", str(int(o["ack_delay_ms"])),
            "-seed", str(int(o["seed"])),
            "-first-stream", str(self._first_stream),
        ]  # fmt: skip
        if o["otlp_only"]:
            argv.append("-otlp-only")
        for key, flag in (("tls_cert", "-tls-cert"), ("tls_key", "-tls-key"), ("client_ca", "-client-ca")):
            if o[key]:
                argv += [flag, str(o[key])]
        return argv + self.extra_args

    def start(self) -> Sink:
        """Build if needed, start, and wait for the READY line."""
        if self.running:
            return self
        binary = self.binary or build_sink()
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_unterminated_tail()
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                self._argv(binary), stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
            )
        self._proc = proc
        assert proc.stdout is not None
        buf = b""
        deadline = time.monotonic() + self.ready_timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    raise SinkError(
                        f"sink gave no READY line within {self.ready_timeout}s{self._stderr_tail()}"
                    )
                if sel.select(timeout=min(left, 0.2)):
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:
                        proc.wait(timeout=5)
                        raise SinkError(
                            f"sink exited with {proc.returncode} before READY{self._stderr_tail()}"
                        )
                    buf += chunk
        ready = buf.split(b"\n", 1)[0].decode()
        if not ready.startswith("READY "):
            self._kill()
            raise SinkError(f"unexpected first line from sink: {ready!r}{self._stderr_tail()}")
        for key in ("grpc", "http", "control"):
            self._addresses[key] = _address(ready, key)
            self.ports[key] = _port(self._addresses[key])
        return self

    def stop(self, timeout: float = 5.0) -> int | None:
        """Stop the sink (SIGTERM, then SIGKILL after ``timeout``); returns its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        return proc.returncode

    def restart(self, **options: Any) -> Sink:
        """Stop and start again on the same ports, optionally with changed start options.

        The out file is appended to, so records from before the restart stay visible.
        """
        unknown = set(options) - set(self.options)
        if unknown:
            raise TypeError(f"unknown sink options: {sorted(unknown)}")
        self.stop()
        self.options.update(options)
        # Keep stream numbers unique across restarts so tests can tell a reconnect apart.
        streams = [int(r.get("stream", 0)) for r in self.lines()]
        self._first_stream = max([self._first_stream - 1, *streams]) + 1
        deadline = time.monotonic() + 10.0
        while True:
            try:
                return self.start()
            except SinkError as exc:
                # The old process's sockets may linger for a moment.
                if "address already in use" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _drop_unterminated_tail(self) -> None:
        """Cut a half-written last line left by a sink that had to be SIGKILLed.

        The sink writes a batch's line before it answers, so a cut line was never
        acknowledged; left in place, the next sink's first line would be glued onto it.
        """
        try:
            with open(self.out_path, "r+b") as out:
                data = out.read()
                if data and not data.endswith(b"\n"):
                    out.truncate(data.rfind(b"\n") + 1)
        except FileNotFoundError:
            pass

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def _stderr_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- sink stderr ---\n" + text[-4000:]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    # -- addresses -------------------------------------------------------

    def _addr(self, key: str) -> str:
        if key not in self._addresses:
            raise SinkError("the sink has not been started")
        return self._addresses[key]

    @property
    def grpc_address(self) -> str:
        """``127.0.0.1:PORT`` of the gRPC server (Arrow + OTLP services)."""
        return self._addr("grpc")

    @property
    def http_address(self) -> str:
        """``127.0.0.1:PORT`` of the OTLP/HTTP server."""
        return self._addr("http")

    @property
    def control_address(self) -> str:
        """``127.0.0.1:PORT`` of the (always plain-HTTP) control server."""
        return self._addr("control")

    @property
    def http_url(self) -> str:
        """Base URL for OTLP/HTTP (append ``/v1/metrics`` or ``/v1/logs``)."""
        scheme = "https" if self.options["tls_cert"] else "http"
        return f"{scheme}://{self.http_address}"

    # -- out file --------------------------------------------------------

    def lines(self) -> list[Record]:
        """Every complete line of the out file, accepted and rejected."""
        try:
            raw = self.out_path.read_bytes()
        except FileNotFoundError:
            return []
        out: list[Record] = []
        for text in raw.split(b"\n")[:-1]:  # the last element is '' or a partial line
            if text.strip():
                rec: Record = json.loads(text)
                out.append(rec)
        return out

    @staticmethod
    def _match(rec: Record, signal: str | None, via: str | None) -> bool:
        return (signal is None or rec.get("signal") == signal) and (via is None or rec.get("via") == via)

    def records(self, signal: str | None = None, via: str | None = None) -> list[Record]:
        """Accepted batches, in the order the sink decided on them."""
        return [r for r in self.lines() if not r.get("rejected") and self._match(r, signal, via)]

    def rejected(self, signal: str | None = None, via: str | None = None) -> list[Record]:
        """Refused batches and broken streams (``rejected: true``, with ``status`` and ``error``)."""
        return [r for r in self.lines() if r.get("rejected") and self._match(r, signal, via)]

    def wait_for(
        self, predicate: Callable[[list[Record]], bool], timeout: float = 10.0, interval: float = 0.02
    ) -> list[Record]:
        """Poll ``lines()`` until ``predicate(lines)`` is true; returns the lines. Raises on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.lines()
            if predicate(lines):
                return lines
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink out file did not match within {timeout}s; {len(lines)} lines")
            time.sleep(interval)

    def wait_for_records(
        self, count: int, timeout: float = 10.0, signal: str | None = None, via: str | None = None
    ) -> list[Record]:
        """Wait until at least ``count`` accepted records (matching the filters) exist; return them."""
        self.wait_for(lambda _: len(self.records(signal, via)) >= count, timeout)
        return self.records(signal, via)

    # -- control ---------------------------------------------------------

    def _control(self, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"http://{self.control_address}/control"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                result: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as exc:
            raise SinkError(f"sink refused control {body}: {exc.read().decode(errors='replace')}") from exc
        return result

    def set(self, **control: Any) -> dict[str, Any]:
        """Change fault settings at run time; returns the settings now in force.

        Fields: mode, random_unavailable, reject_batch_containing, drop_stream_after,
        ack_delay_ms. They are also remembered for ``restart()``.
        """
        unknown = set(control) - _CONTROL_FIELDS
        if unknown:
            raise TypeError(f"unknown control fields: {sorted(unknown)}")
        result = self._control(control)
        self.options.update(control)
        return result

    def settings(self) -> dict[str, Any]:
        """The fault settings in force."""
        return self._control(None)


def sink_binary() -> Path:
    """Build (if stale) and return the sink binary; fails the calling test when Go is missing."""
    if not go_available():
        pytest.fail("the Go toolchain ('go') is needed to build the interop sink; run tests/setup.sh")
    return build_sink()


@pytest.fixture
def go_sink(tmp_path: Path) -> Iterator[Sink]:
    """A started sink with default settings writing to ``tmp_path/sink.jsonl``."""
    sink = Sink(tmp_path / "sink.jsonl", binary=sink_binary())
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def go_sink_binary() -> Path:
    """The sink binary, built (if stale) once per session."""
    return sink_binary()


@pytest.fixture
def make_sink(go_sink_binary: Path, tmp_path: Path) -> Iterator[Callable[..., Sink]]:
    """``make_sink(**options)`` -> a Sink (not yet started) in tmp_path; every one is stopped at the end."""
    sinks: list[Sink] = []

    def make(**options: Any) -> Sink:
        sink = Sink(tmp_path / f"sink{len(sinks)}.jsonl", binary=go_sink_binary, **options)
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.stop()
