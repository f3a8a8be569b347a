"""TOML → frozen dataclasses, with FILE:LINE errors.

Every key has a default, so an empty file (or none) is a valid config. The schema is the dataclasses
themselves: this module's own (agent, buffer, batch, spool, host) and the ones each source and
exporter module declares; `_convert` walks their type hints. Unknown keys, wrong types, bad sizes
and bad durations are errors, raised once at load, before any thread starts:

    edgecollect.toml:12: buffer.max_points: expected an integer from 1 to 10_000_000, found string 'lots'

Every count, size and duration has a range declared on its field (`Annotated[int, Range(1, 100)]`,
see configtypes.py), checked here on the value as written, before any dataclass is built: no
value can make loading (or check-config) allocate a ring, parse forever or overflow. A check in a
`__post_init__` raises `FieldError(key, expected)` and is reported on that key's line.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import os
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from edgecollect.buffer import Overflow
from edgecollect.configtypes import (
    Duration,
    FieldError,
    Key,
    KeyDocs,
    Range,
    Secret,
    Size,
    describe,
    parse_duration,
    parse_size,
    range_unit,
    split_range,
    type_name,
)
from edgecollect.errors import ConfigError
from edgecollect.sources.hostconfig import HostConfig
from edgecollect.sources.sysfs.config import SysfsConfig
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
_FIVE_MINUTES = Duration(300.0)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    state_dir: str = ""
    resource: dict[str, ResourceValue] = field(default_factory=dict)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    summary_interval: Annotated[Duration, Range("1s", "1d")] = _ONE_MINUTE
    self_interval: Annotated[Duration, Range("100ms", "1h")] = _TEN_SECONDS
    max_series: Annotated[int, Range(1, 1_000_000)] = 50_000
    self_max_series: Annotated[int, Range(100, 100_000)] = 2_000
    shutdown_timeout: Annotated[Duration, Range("100ms", "10m")] = _FOUR_SECONDS
    clock: Literal["auto", "kernel", "build_date", "assume_synced"] = "auto"

    KEY_DOCS: ClassVar[KeyDocs] = {
        "state_dir": "Folder of the spool and the agent's state; the agent writes nowhere else. A relative "
        "state_dir is resolved against the folder of this config file (not the working directory, which is / "
        "under systemd). Empty: $STATE_DIRECTORY (set by systemd's StateDirectory=), else "
        "$XDG_STATE_HOME/edgecollect, else /var/lib/edgecollect when run as root.",
        "resource": 'Extra attributes that describe this gateway, sent with everything: { site = "barn-2" }.',
        "log_level": Key("The least severe log lines the agent writes.", choices={
            "debug": "everything, including each reconnect attempt and rejected value",
            "info": "start, stop, connections, the periodic summary",
            "warning": "only problems: lost devices, drops, refusals",
            "error": "only failures that stop a part of the agent"}),
        "summary_interval": "How often the one-line summary (points in, out, dropped, spooled) is logged.",
        "self_interval": "How often the agent's own counters (edgecollect.*) are sampled.",
        "max_series": "Most distinct series (metric name + attributes) across all sources; new series past "
        "it are refused and counted, so a flood of device ids cannot exhaust memory.",
        "self_max_series": "Most distinct series of the agent's own edgecollect.* metrics, a budget apart from "
        "max_series so a flood in a source cannot starve them.",
        "shutdown_timeout": "On SIGTERM, how long the agent may take to flush its rings and exit.",
        "clock": Key("How to tell whether the system clock is right; readings taken while it is not are "
        "marked and repaired when it is set.", choices={
            "auto": "ask the kernel (adjtimex) where that works, else compare with the build date",
            "kernel": "trust the kernel's NTP state, and never a time before the build date",
            "build_date": "only distrust times before the build date (containers, clocks set outside the kernel)",
            "assume_synced": "always trust the clock; never mark readings"}),
    }


@dataclass(frozen=True, slots=True)
class BufferConfig:
    max_points: Annotated[int, Range(1, 10_000_000)] = 100_000
    max_bytes: Annotated[Size | None, Range("4KiB", "256MiB")] = None
    overflow: Overflow = "drop_oldest"
    max_log_bytes: Annotated[Size, Range("4KiB", "64MiB")] = _ONE_MIB

    KEY_DOCS: ClassVar[KeyDocs] = {
        "max_points": "Points each source's ring holds between flushes. A point costs 37 bytes, allocated "
        "at start: 10 million points is a 370 MB ring per source. Ignored when max_bytes is set.",
        "max_bytes": Key("The same ring budget in bytes instead of points (one point per 37 bytes); "
        "when set it overrides max_points.", example='"4MiB"'),
        "overflow": Key("What a full ring does with a new point (each drop is counted).", choices={
            "drop_oldest": "overwrite the oldest point: keep the most recent readings",
            "drop_newest": "refuse the new point: keep what is already buffered"}),
        "max_log_bytes": "Log records (device tracebacks, text payloads) each source buffers between flushes.",
    }


@dataclass(frozen=True, slots=True)
class BatchConfig:
    flush_interval: Annotated[Duration, Range("100ms", "1h")] = _TEN_SECONDS
    max_points: Annotated[int, Range(1, 1_000_000)] = 5000

    KEY_DOCS: ClassVar[KeyDocs] = {
        "flush_interval": "How often every ring is cut into a batch and written to the spool; the longest a "
        "reading waits before it is on disk.",
        "max_points": "Points per batch; a ring that fills to this is cut early, in whole batches.",
    }


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    max_size: Annotated[Size, Range("4KiB", "4TiB")] = _256_MIB
    max_age: Annotated[Duration, Range("1m", "3650d")] = _THIRTY_DAYS
    when_full: Literal["drop_oldest", "drop_newest", "downsample"] = "drop_oldest"
    downsample_window: Annotated[Duration, Range("10s", "1d")] = _FIVE_MINUTES
    sync: Literal["file", "file+dir"] = "file"
    mode: Literal["write_behind", "always"] = "write_behind"
    write_behind_timeout: Annotated[Duration, Range("100ms", "10m")] = _FOUR_SECONDS
    write_behind_max_bytes: Annotated[Size, Range("64KiB", "256MiB")] = _EIGHT_MIB
    compact_points: Annotated[int, Range(256, 1_000_000)] = 100_000
    compact_size: Annotated[Size, Range("64KiB", "64MiB")] = _FOUR_MIB

    KEY_DOCS: ClassVar[KeyDocs] = {
        "max_size": "Disk the spool may use for batches not yet delivered upstream.",
        "max_age": "Batches older than this are deleted (and counted) even if never delivered.",
        "when_full": Key("What happens to a new batch when the spool is at max_size (each drop is "
        "counted).", choices={
            "drop_oldest": "delete the oldest batches to make room: keep the most recent data",
            "drop_newest": "refuse the new batch: keep the oldest data",
            "downsample": "first replace the oldest metrics batches by one summary per series and "
            "downsample_window (a gauge becomes its min, max, mean, last and count; a counter keeps its "
            "last value, a delta its sum); delete the oldest only when nothing is left to summarise"}),
        "downsample_window": 'With when_full = "downsample": the time span each summary covers, aligned to '
        "the clock (5m: 00:00, 00:05, ...). Longer saves more disk, keeps less detail.",
        # Why one fsync suffices on ext4/f2fs/xfs/btrfs: see spool.py's docstring.
        "sync": Key("How each batch is made durable before its source is told so.", choices={
            "file": "one fsync of the batch file (enough on ext4, f2fs, xfs and btrfs)",
            "file+dir": "also fsync the spool folder after the rename (other filesystems)"}),
        "mode": Key("When a batch is written to the spool (the SD card).", choices={
            "write_behind": "while the upstream answers, a batch goes straight to it and is written only "
            "if not acknowledged within write_behind_timeout, when the upstream is away or behind, or at "
            "stop; MQTT QoS 1 messages are acknowledged when the upstream or the disk has the batch",
            "always": "every batch is fsync'd to the spool before it is sent (write-ahead)"}),
        "write_behind_timeout": 'With mode = "write_behind": how long a batch may wait for the upstream\'s '
        "acknowledgement before it is written to the spool anyway.",
        "write_behind_max_bytes": 'With mode = "write_behind": memory for batches sent but not yet '
        "acknowledged and not on disk; beyond it, batches are spooled.",
        "compact_points": "While offline, small batch files are merged into files of up to this many points "
        "(fewer files, fewer bytes per point on the card).",
        "compact_size": "...and of up to this many bytes.",
    }


# Source kinds that are arrays of tables, and where their config dataclass lives. Imported lazily
# so that each source module stays the single definition of its keys.
ARRAY_SOURCES: dict[str, tuple[str, str]] = {
    "mqtt": ("edgecollect.sources.mqtt", "MqttConfig"),
    "serial": ("edgecollect.sources.serial", "SerialConfig"),
    "modbus": ("edgecollect.sources.modbus", "ModbusConfig"),
}


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    host: HostConfig = field(default_factory=HostConfig)
    mqtt: tuple[Any, ...] = ()  # MqttConfig, from edgecollect.sources.mqtt
    serial: tuple[Any, ...] = ()  # SerialConfig, from edgecollect.sources.serial
    modbus: tuple[Any, ...] = ()  # ModbusConfig, from edgecollect.sources.modbus
    sysfs: SysfsConfig = field(default_factory=SysfsConfig)


@dataclass(frozen=True, slots=True)
class Config:
    agent: AgentConfig = field(default_factory=AgentConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    upstream: Any = None  # UpstreamConfig from edgecollect.exporters.upstream; None: offline
    processors: tuple[Any, ...] = ()  # [[processors]], from edgecollect.processors.config
    opamp: Any = None  # OpampConfig from edgecollect.opamp.config; None: no remote management
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
    return loads(text, name, base_dir=Path(os.path.abspath(path)).parent)


_TOML_POS = re.compile(r"\(at line (\d+), column \d+\)")
_LONG_NUMBER = re.compile(r"[0-9_]{4000,}")


def loads(text: str, filename: str = "<string>", base_dir: Path | None = None) -> Config:
    """The config in `text`; a relative agent.state_dir is resolved against `base_dir` (the
    config file's folder, see load()), else against the working directory."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.search(str(exc))
        message = _TOML_POS.sub("", str(exc)).strip()
        raise ConfigError(filename, int(m.group(1)) if m else None, "(syntax)", "valid TOML", message) from exc
    except ValueError as exc:  # tomllib lets int() refuse a literal of more than 4300 digits
        long = _LONG_NUMBER.search(text)
        line = text.count("\n", 0, long.start()) + 1 if long else None
        raise ConfigError(filename, line, "(syntax)", "numbers of at most 4300 digits", "a longer one") from exc
    loader = _Loader(filename, key_lines(text))
    sources = data.pop("sources", {})
    upstream = data.pop("upstream", None)
    processors = data.pop("processors", None)
    opamp = data.pop("opamp", None)
    partial = loader.convert(data, Config, ())
    assert isinstance(partial, Config)
    cfg = dataclasses.replace(
        partial,
        sources=loader.sources(sources),
        upstream=loader.upstream(upstream),
        processors=loader.processors(processors),
        opamp=loader.optional_table(opamp, "opamp", "edgecollect.opamp.config", "OpampConfig"),
        path=filename,
    )
    configured = cfg.agent.state_dir
    if configured and base_dir is not None and not os.path.isabs(configured):
        cfg = dataclasses.replace(cfg, agent=dataclasses.replace(cfg.agent, state_dir=str(base_dir / configured)))
    problem = state_dir_problem(cfg.state_dir())
    if problem:
        found = problem if configured else f"{problem} (the default state_dir)"
        raise loader.error(("agent", "state_dir"), "a directory, or a path where one can be made", found)
    return cfg


def state_dir_problem(path: Path) -> str:
    """Why `path` cannot be (or become) the state directory, or "". Only looks, creates nothing:
    mkdir(parents=True) on a dangling link or a file says just "File exists"."""
    probe = Path(os.path.abspath(path))
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir():
        return ""
    if probe.is_symlink():
        try:
            target = os.readlink(probe)
        except OSError:
            target = "?"
        try:
            probe.stat()
        except OSError as exc:
            return f"{probe}: a symlink to {target}, which cannot be followed ({exc.strerror})"
        return f"{probe}: a symlink to {target}, which is not a directory"
    return f"{probe}: exists and is not a directory"


class _Loader:
    def __init__(self, filename: str, lines: dict[PathKey, int]) -> None:
        self.filename = filename
        self.lines = lines

    def error(self, path: PathKey, expected: str, found: str = "") -> ConfigError:
        return ConfigError(self.filename, line_of(self.lines, path), dotted(path), expected, found)

    def sources(self, data: object) -> SourcesConfig:
        path: PathKey = ("sources",)
        if not isinstance(data, dict):
            raise self.error(path, "a table", describe(data))
        unknown = set(data) - {"host", "sysfs", *ARRAY_SOURCES}
        if unknown:
            key = sorted(unknown)[0]
            raise self.error((*path, key), "one of host, sysfs, " + ", ".join(ARRAY_SOURCES), "unknown source kind")
        host = self.convert(data.get("host", {}), HostConfig, (*path, "host"))
        sysfs = self.convert(data.get("sysfs", {}), SysfsConfig, (*path, "sysfs"))
        arrays: dict[str, tuple[Any, ...]] = {}
        for kind, (module, cls_name) in ARRAY_SOURCES.items():
            if kind not in data:
                arrays[kind] = ()
                continue
            cls = getattr(importlib.import_module(module), cls_name)
            arrays[kind] = self.convert(data[kind], tuple[cls, ...], (*path, kind))  # type: ignore[valid-type]
        return SourcesConfig(host=host, sysfs=sysfs, **arrays)

    def processors(self, data: object) -> tuple[Any, ...]:
        if data is None:
            return ()
        return tuple(importlib.import_module("edgecollect.processors").load(self, data))

    def upstream(self, data: object) -> Any:
        if data is None:
            return None
        cls = importlib.import_module("edgecollect.exporters.upstream").UpstreamConfig
        return self.convert(data, cls, ("upstream",))

    def optional_table(self, data: object, key: str, module: str, cls_name: str) -> Any:
        """A table whose module is imported only when the table is present."""
        if data is None:
            return None
        return self.convert(data, getattr(importlib.import_module(module), cls_name), (key,))

    def convert(self, value: object, hint: Any, path: PathKey) -> Any:
        origin = typing.get_origin(hint)
        if origin is Annotated:
            return self._ranged(value, hint, path)
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return self._dataclass(value, hint, path)
        if origin in (Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if len(options) == 1:  # X | None: X's own message (with its range) says it best
                return self.convert(value, options[0], path)
            for option in options:
                try:
                    return self.convert(value, option, path)
                except ConfigError:
                    continue
            raise self.error(path, type_name(hint), describe(value))
        if origin is Literal:
            if value in typing.get_args(hint) and type(value) is not bool:
                return value
            raise self.error(path, type_name(hint), describe(value))
        if origin in (tuple, list):
            args = typing.get_args(hint)
            if not isinstance(value, list):
                raise self.error(path, "an array", describe(value))
            return tuple(self.convert(v, args[0], (*path, i)) for i, v in enumerate(value))
        if origin is dict:
            _, value_hint = typing.get_args(hint)
            if not isinstance(value, dict):
                raise self.error(path, "a table", describe(value))
            return {str(k): self.convert(v, value_hint, (*path, k)) for k, v in value.items()}
        return self._scalar(value, hint, path)

    def _ranged(self, value: object, hint: Any, path: PathKey) -> Any:
        """A number with a declared Range: type and bounds are checked on the value as written,
        so nothing sized by it (a ring, a buffer) exists yet when it is refused."""
        inner, rng = split_range(hint)
        try:
            converted = self.convert(value, inner, path)
        except ConfigError as exc:
            if exc.key != dotted(path) or rng is None:
                raise
            raise self.error(path, type_name(hint), describe(value)) from exc
        if rng is not None and converted is not None and not rng.contains(converted, range_unit(inner)):
            raise self.error(path, type_name(hint), describe(value))
        return converted

    def _scalar(self, value: object, hint: Any, path: PathKey) -> Any:
        if hint is Size or hint is Duration:
            parse = parse_size if hint is Size else parse_duration
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise self.error(path, type_name(hint), describe(value))
            try:
                return parse(value)
            except ValueError as exc:
                raise self.error(path, str(exc), describe(value)) from exc
        if hint is bool:
            if isinstance(value, bool):
                return value
        elif hint is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif hint is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                try:
                    number = float(value)
                except OverflowError:  # an int past float's range
                    number = math.inf
                if math.isfinite(number):  # nan and inf are never a setting
                    return number
        elif hint is str or hint is Secret:
            if isinstance(value, str):
                return value
        elif hint is Any or hint is object:
            return value
        else:
            raise self.error(path, f"a value of a supported type (schema bug: {hint!r})")
        raise self.error(path, type_name(hint), describe(value))

    def _dataclass(self, value: object, cls: type, path: PathKey) -> Any:
        if not isinstance(value, dict):
            raise self.error(path, "a table", describe(value))
        hints = typing.get_type_hints(cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init and f.name != "path"}
        unknown = [k for k in value if k not in fields]
        if unknown:
            raise self.error((*path, unknown[0]), "one of " + ", ".join(fields), "unknown key")
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = self.convert(value[name], hints[name], (*path, name))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise self.error((*path, name), type_name(hints[name]), "nothing (required key missing)")
        try:
            return cls(**kwargs)
        except FieldError as exc:
            raise self.error((*path, *exc.key), exc.expected, exc.found or _written(value, exc.key)) from exc
        except (ValueError, TypeError) as exc:
            # Older checks: "<field> must be <rule>" or "<field>: expected <rule>" name their field.
            message = str(exc)
            for sep in (" must be ", ": expected ", ": "):
                name, found_sep, rule = message.partition(sep)
                if found_sep and name in fields:
                    raise self.error((*path, name), rule, _written(value, (name,))) from exc
            raise self.error(path, message) from exc


def _written(table: dict[str, Any], key: tuple[str | int, ...]) -> str:
    """The value at `key` below `table` as the file wrote it, or that the file left it out."""
    node: Any = table
    for part in key:
        if isinstance(node, dict):
            present = part in node
        else:
            present = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not present:
            return "nothing (left at its default)"
        node = node[part]
    return describe(node)
