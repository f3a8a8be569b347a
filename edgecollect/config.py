"""TOML → frozen dataclasses, with FILE:LINE errors.

Every key has a default, so an empty file (or none) is a valid config. The schema is the dataclasses
themselves: this module's own (agent, buffer, batch, spool, host) and the ones each source and
exporter module declares; `_convert` walks their type hints. Unknown keys, wrong types, bad sizes
and bad durations are errors, raised once at load, before any thread starts:

    edgecollect.toml:12: buffer.max_points: expected an integer, found string "lots"
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

from edgecollect.buffer import Overflow
from edgecollect.configtypes import Duration, Secret, Size, parse_duration, parse_size
from edgecollect.errors import ConfigError
from edgecollect.sources.host import HostConfig
from edgecollect.tomlpos import PathKey, dotted, key_lines, line_of

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

ResourceValue = str | int | float | bool

# NewType defaults as constants (ruff reads a call in a dataclass default as a shared value).
_ONE_MINUTE = Duration(60.0)
_TEN_SECONDS = Duration(10.0)
_FOUR_SECONDS = Duration(4.0)
_ONE_MIB = Size(1024 * 1024)
_256_MIB = Size(256 * 1024**2)
_EIGHT_MIB = Size(8 * 1024**2)
_FOUR_MIB = Size(4 * 1024**2)
_THIRTY_DAYS = Duration(30 * 86400.0)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    state_dir: str = ""  # empty: $STATE_DIRECTORY (systemd), $XDG_STATE_HOME/edgecollect, /var/lib/edgecollect as root
    resource: dict[str, ResourceValue] = field(default_factory=dict)  # extra resource attributes
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    summary_interval: Duration = _ONE_MINUTE  # the periodic one-line log summary
    self_interval: Duration = _TEN_SECONDS  # how often the agent's own counters are sampled
    max_series: int = 50_000  # distinct series across all sources (cardinality cap)
    shutdown_timeout: Duration = _FOUR_SECONDS  # SIGTERM → rings flushed and exit within this
    # How to tell a synchronised clock: auto (adjtimex where it works, else the build date),
    # kernel, build_date, or assume_synced (never mark samples).
    clock: Literal["auto", "kernel", "build_date", "assume_synced"] = "auto"

    def __post_init__(self) -> None:
        if self.max_series < 1:
            raise ValueError("max_series must be at least 1")


@dataclass(frozen=True, slots=True)
class BufferConfig:
    max_points: int = 100_000  # per source ring
    max_bytes: Size | None = None  # alternative budget; points = max_bytes / 37
    overflow: Overflow = "drop_oldest"
    max_log_bytes: Size = _ONE_MIB  # per source, for log records

    def __post_init__(self) -> None:
        if self.max_points < 1:
            raise ValueError("max_points must be at least 1")


@dataclass(frozen=True, slots=True)
class BatchConfig:
    flush_interval: Duration = _TEN_SECONDS  # every ring is cut at least this often
    max_points: int = 5000  # per batch; a ring that fills to this is cut early, in whole batches

    def __post_init__(self) -> None:
        if self.max_points < 1:
            raise ValueError("max_points must be at least 1")
        if self.flush_interval <= 0:
            raise ValueError("flush_interval must be positive")


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    max_size: Size = _256_MIB
    max_age: Duration = _THIRTY_DAYS
    when_full: Overflow = "drop_oldest"
    # Why one fsync suffices on ext4/f2fs/xfs/btrfs: see spool.py's docstring.
    sync: Literal["file", "file+dir"] = "file"  # file: one fsync per batch; file+dir: also the directory
    # write_behind: with a healthy upstream a batch is spooled only if not acked within
    # write_behind_timeout (or at stop); always: every batch is fsync'd before it is sent.
    mode: Literal["write_behind", "always"] = "write_behind"
    write_behind_timeout: Duration = _FOUR_SECONDS  # longest wait for the upstream's ack before spooling
    write_behind_max_bytes: Size = _EIGHT_MIB  # memory for batches held unspooled (beyond: spooled)
    # While offline, small batch files are merged (compaction.py) into files of up to:
    compact_points: int = 100_000  # points in one merged file
    compact_size: Size = _FOUR_MIB  # bytes in one merged file

    def __post_init__(self) -> None:
        if self.max_size < 4096:
            raise ValueError("max_size must be at least 4KiB")
        if self.write_behind_timeout <= 0:
            raise ValueError("write_behind_timeout must be positive")
        if self.compact_points < 256:
            raise ValueError("compact_points must be at least 256")


# Source kinds that are arrays of tables, and where their config dataclass lives. Imported lazily
# so that each source module stays the single definition of its keys.
ARRAY_SOURCES: dict[str, tuple[str, str]] = {
    "mqtt": ("edgecollect.sources.mqtt", "MqttConfig"),
    "serial": ("edgecollect.sources.serial", "SerialConfig"),
}


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    host: HostConfig = field(default_factory=HostConfig)
    mqtt: tuple[Any, ...] = ()  # MqttConfig, from edgecollect.sources.mqtt
    serial: tuple[Any, ...] = ()  # SerialConfig, from edgecollect.sources.serial


@dataclass(frozen=True, slots=True)
class Config:
    agent: AgentConfig = field(default_factory=AgentConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    upstream: Any = None  # UpstreamConfig from edgecollect.exporters.upstream; None: offline
    path: str = "<defaults>"

    def state_dir(self) -> Path:
        return default_state_dir(self.agent.state_dir)


def default_state_dir(configured: str = "") -> Path:
    if configured:
        return Path(configured)
    if os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    if os.environ.get("XDG_STATE_HOME"):
        return Path(os.environ["XDG_STATE_HOME"]) / "edgecollect"
    if os.geteuid() == 0:
        # root on a gateway means the system agent: `sudo edgecollect status` must find the
        # service's state, not an empty folder under /root.
        return Path("/var/lib/edgecollect")
    return Path.home() / ".local" / "state" / "edgecollect"


# -- loading ----------------------------------------------------------------------------------


def load(path: str | os.PathLike[str] | None) -> Config:
    if path is None:
        return Config()
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(name, None, "(file)", "a readable TOML file", exc.strerror or str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(name, None, "(file)", "UTF-8 text", "invalid bytes") from exc
    return loads(text, name)


_TOML_POS = re.compile(r"\(at line (\d+), column \d+\)")


def loads(text: str, filename: str = "<string>") -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.search(str(exc))
        message = _TOML_POS.sub("", str(exc)).strip()
        raise ConfigError(filename, int(m.group(1)) if m else None, "(syntax)", "valid TOML", message) from exc
    loader = _Loader(filename, key_lines(text))
    sources = data.pop("sources", {})
    upstream = data.pop("upstream", None)
    partial = loader.convert(data, Config, ())
    assert isinstance(partial, Config)
    return dataclasses.replace(
        partial,
        sources=loader.sources(sources),
        upstream=loader.upstream(upstream),
        path=filename,
    )


def _type_name(hint: object) -> str:
    if hint is bool:
        return "true or false"
    if hint is int:
        return "an integer"
    if hint is float:
        return "a number"
    if hint is str or hint is Secret:
        return "a string"
    if hint is Size:
        return 'a size such as "64MiB"'
    if hint is Duration:
        return 'a duration such as "10s"'
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (tuple, list):
        return "an array"
    if origin is dict or dataclasses.is_dataclass(hint):
        return "a table"
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    return str(hint)


def _describe(value: object) -> str:
    kind = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind.get(type(value), type(value).__name__)} {text}"


class _Loader:
    def __init__(self, filename: str, lines: dict[PathKey, int]) -> None:
        self.filename = filename
        self.lines = lines

    def error(self, path: PathKey, expected: str, found: str = "") -> ConfigError:
        return ConfigError(self.filename, line_of(self.lines, path), dotted(path), expected, found)

    def sources(self, data: object) -> SourcesConfig:
        path: PathKey = ("sources",)
        if not isinstance(data, dict):
            raise self.error(path, "a table", _describe(data))
        unknown = set(data) - {"host", *ARRAY_SOURCES}
        if unknown:
            key = sorted(unknown)[0]
            raise self.error((*path, key), "one of host, " + ", ".join(ARRAY_SOURCES), "unknown source kind")
        host = self.convert(data.get("host", {}), HostConfig, (*path, "host"))
        arrays: dict[str, tuple[Any, ...]] = {}
        for kind, (module, cls_name) in ARRAY_SOURCES.items():
            if kind not in data:
                arrays[kind] = ()
                continue
            cls = getattr(importlib.import_module(module), cls_name)
            arrays[kind] = self.convert(data[kind], tuple[cls, ...], (*path, kind))  # type: ignore[valid-type]
        return SourcesConfig(host=host, mqtt=arrays["mqtt"], serial=arrays["serial"])

    def upstream(self, data: object) -> Any:
        if data is None:
            return None
        cls = importlib.import_module("edgecollect.exporters.upstream").UpstreamConfig
        return self.convert(data, cls, ("upstream",))

    def convert(self, value: object, hint: Any, path: PathKey) -> Any:
        origin = typing.get_origin(hint)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self._dataclass(value, hint, path)
        if origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            for option in options:
                try:
                    return self.convert(value, option, path)
                except ConfigError:
                    continue
            raise self.error(path, _type_name(hint), _describe(value))
        if origin is Literal:
            if value in typing.get_args(hint) and type(value) is not bool:
                return value
            raise self.error(path, _type_name(hint), _describe(value))
        if origin in (tuple, list):
            args = typing.get_args(hint)
            if not isinstance(value, list):
                raise self.error(path, "an array", _describe(value))
            return tuple(self.convert(v, args[0], (*path, i)) for i, v in enumerate(value))
        if origin is dict:
            _, value_hint = typing.get_args(hint)
            if not isinstance(value, dict):
                raise self.error(path, "a table", _describe(value))
            return {str(k): self.convert(v, value_hint, (*path, k)) for k, v in value.items()}
        return self._scalar(value, hint, path)

    def _scalar(self, value: object, hint: Any, path: PathKey) -> Any:
        if hint is Size or hint is Duration:
            parse = parse_size if hint is Size else parse_duration
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise self.error(path, _type_name(hint), _describe(value))
            try:
                return parse(value)  # type: ignore[arg-type]
            except ValueError as exc:
                raise self.error(path, str(exc), _describe(value)) from exc
        if hint is bool:
            if isinstance(value, bool):
                return value
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif hint is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        elif hint is str or hint is Secret:
            if isinstance(value, str):
                return value
        elif hint is Any or hint is object:
            return value
        else:
            raise self.error(path, f"a value of a supported type (schema bug: {hint!r})")
        raise self.error(path, _type_name(hint), _describe(value))

    def _dataclass(self, value: object, cls: type, path: PathKey) -> Any:
        if not isinstance(value, dict):
            raise self.error(path, "a table", _describe(value))
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "path"}
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise self.error((*path, unknown[0]), "one of " + ", ".join(fields), "unknown key")
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = self.convert(value[name], hints[name], (*path, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error((*path, name), _type_name(hints[name]), "nothing (required key missing)")
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as exc:
            # "<field> must be <rule>" from __post_init__ points at that field's own line.
            name, sep, rule = str(exc).partition(" must be ")
            if sep and name in fields:
                raise self.error((*path, name), rule, _describe(value.get(name, "(default)"))) from exc
            raise self.error(path, str(exc)) from exc
