"""What the OpAMP client keeps in `<state_dir>/opamp/`: the instance uid and the remote config.

Every write is tmp file + fsync + rename + fsync of the directory, so a power cut leaves either the
old file or the new one. The remote config file starts with one comment line carrying the server's
config hash, so after a restart the agent reports the hash it runs and the server does not resend it.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from pathlib import Path

from edgecollect.config import Config, loads
from edgecollect.errors import ConfigError

log = logging.getLogger("edgecollect.opamp")
HASH_PREFIX = "# opamp config_hash: "


def opamp_dir(state_dir: Path) -> Path:
    return state_dir / "opamp"


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_uuid7() -> bytes:
    """RFC 9562 UUIDv7: 48-bit Unix milliseconds, version 7, variant 10, random rest."""
    raw = bytearray((time.time_ns() // 1_000_000).to_bytes(6, "big") + secrets.token_bytes(10))
    raw[6] = 0x70 | (raw[6] & 0x0F)
    raw[8] = 0x80 | (raw[8] & 0x3F)
    return bytes(raw)


def instance_uid(state_dir: Path) -> bytes:
    """This agent's OpAMP identity: made once, then read back on every start."""
    path = opamp_dir(state_dir) / "instance_uid"
    try:
        uid = path.read_bytes()
        if len(uid) == 16:
            return uid
        log.warning("opamp: %s is not 16 bytes; making a new instance uid", path)
    except FileNotFoundError:
        pass
    uid = new_uuid7()
    write_atomic(path, uid)
    return uid


class RemoteConfigStore:
    """remote.toml (last good remote config) and remote.toml.new (one being applied)."""

    def __init__(self, state_dir: Path) -> None:
        self.current = opamp_dir(state_dir) / "remote.toml"
        self.pending = opamp_dir(state_dir) / "remote.toml.new"

    def stage(self, text: str, config_hash: bytes) -> Path:
        """Write `text` as the pending config (durable); returns where it will live once applied."""
        write_atomic(self.pending, (HASH_PREFIX + config_hash.hex() + "\n" + text).encode())
        return self.current

    def commit(self) -> None:
        os.replace(self.pending, self.current)
        _fsync_dir(self.current.parent)

    def discard(self) -> None:
        self.pending.unlink(missing_ok=True)

    def applied_hash(self) -> bytes:
        """The server hash of remote.toml, or b"" when there is none."""
        try:
            with open(self.current, encoding="utf-8") as fh:
                first = fh.readline()
        except OSError:
            return b""
        if first.startswith(HASH_PREFIX):
            try:
                return bytes.fromhex(first[len(HASH_PREFIX):].strip())
            except ValueError:
                return b""
        return b""

    def load(self) -> Config | None:
        """The stored remote config if present and valid; a stale pending file is dropped (the
        power went while it was being applied, so it never proved it starts)."""
        self.discard()
        try:
            text = self.current.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.error("opamp: cannot read %s (%s): using the local config", self.current, exc)
            return None
        try:
            return loads(text, str(self.current))
        except ConfigError as exc:
            log.error("opamp: stored remote config is invalid (%s): using the local config", exc)
            return None


def startup_config(local: Config) -> Config:
    """The config to start with: the applied remote config when the local one allows remote
    config and one is stored in its state dir, else the local one."""
    if local.opamp is None or not local.opamp.accept_remote_config:
        return local
    remote = RemoteConfigStore(local.state_dir()).load()
    if remote is None:
        return local
    log.info("opamp: starting with the remote config %s (it replaces %s)", remote.path, local.path)
    return remote
