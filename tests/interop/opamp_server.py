"""Build, run and read the Go reference OpAMP server (tests/interop/opamp/, opamp-go's server package).

    with OpampServer(tmp_path / "opamp.jsonl") as server:
        server.serve_config(toml_text)            # sent to every agent until it reports that hash
        messages = server.wait_for(lambda ms: ..., what="...")

Every AgentToServer the server received is one JSON line (protojson with proto field names; bytes
fields are base64). `messages()` returns them decoded, in arrival order.
"""

from __future__ import annotations

import base64
import fcntl
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.ports import free_port
from tests.support.wait import wait_until

SOURCE_DIR = Path(__file__).resolve().parent / "opamp"
BINARY = Path(__file__).resolve().parent / "bin" / "opamp-server"

Message = dict[str, Any]


class OpampServerError(RuntimeError):
    pass


def _is_fresh(binary: Path) -> bool:
    if not binary.exists():
        return False
    built = binary.stat().st_mtime
    return all(p.stat().st_mtime <= built for p in SOURCE_DIR.iterdir() if p.is_file())


def build(binary: Path = BINARY, timeout: float = 900.0) -> Path:
    """`go build` the server unless the binary is newer than its sources (lock-serialised)."""
    if _is_fresh(binary):
        return binary
    go = shutil.which("go")
    if go is None:
        raise OpampServerError("the Go toolchain ('go') is not on PATH; it builds the OpAMP interop server")
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".opamp-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_fresh(binary):
            return binary
        tmp = binary.with_name(binary.name + ".tmp")
        proc = subprocess.run(["nice", "-n", "10", go, "build", "-o", str(tmp), "."], cwd=SOURCE_DIR,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise OpampServerError(f"go build of the OpAMP server failed:\n{proc.stderr}")
        tmp.replace(binary)
    return binary


def decode_bytes(value: str) -> bytes:
    return base64.b64decode(value)


class OpampServer:
    def __init__(self, out: Path, port: int | None = None, tls: tuple[Path, Path] | None = None,
                 client_ca: Path | None = None) -> None:
        """`tls` = (certificate, key) serves HTTPS; `client_ca` then requires client certificates."""
        self.out = out
        self.port = port or free_port()
        self.tls, self.client_ca = tls, client_ca
        scheme = "https" if tls else "http"
        self.endpoint = f"{scheme}://127.0.0.1:{self.port}/v1/opamp"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = out.with_suffix(".log")

    def start(self) -> OpampServer:
        binary = build()
        with open(self._log, "ab") as log:
            argv = [str(binary), "-listen", f"127.0.0.1:{self.port}", "-out", str(self.out)]
            if self.tls:
                argv += ["-tls-cert", str(self.tls[0]), "-tls-key", str(self.tls[1])]
            if self.client_ca:
                argv += ["-client-ca", str(self.client_ca)]
            self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise OpampServerError(f"OpAMP server exited: {self._log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise OpampServerError("OpAMP server did not listen within 30 s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> OpampServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def serve_config(self, text: str) -> None:
        if self.tls:
            raise OpampServerError("serve_config is for the plain-HTTP server (control is not given a client cert)")
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/control/config", data=text.encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def messages(self) -> list[Message]:
        if not self.out.exists():
            return []
        # The server may be writing a line as we read: only complete (newline-ended) lines count.
        text = self.out.read_text()
        lines = text[: text.rfind("\n") + 1].splitlines()
        return [json.loads(line)["msg"] for line in lines if line.strip()]

    def wait_for(self, check: Callable[[list[Message]], Any], what: str, timeout: float = 90.0) -> Any:
        """Poll the recorded messages until `check` returns something truthy; return it."""
        found: list[Any] = []

        def checked() -> bool:
            found[:] = [check(self.messages())]
            return bool(found[0])

        wait_until(checked, timeout, lambda: f"{what}; {len(self.messages())} messages recorded", pause_s=0.2)
        return found[0]


def uid(message: Message) -> bytes:
    return decode_bytes(message["instance_uid"])


def remote_status(message: Message) -> dict[str, Any] | None:
    status: dict[str, Any] | None = message.get("remote_config_status")
    return status


def effective_toml(message: Message) -> str | None:
    files = message.get("effective_config", {}).get("config_map", {}).get("config_map", {})
    item = files.get("edgecollect.toml")
    return None if item is None else decode_bytes(item.get("body", "")).decode()
