"""Every count, size and duration has a range, checked on load without allocating; every error
(range, type or a __post_init__ rule) points at the offending key's own line."""

from __future__ import annotations

import dataclasses
import importlib
import math
import subprocess
import sys
import tracemalloc
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest

from edgecollect import config as toml_loader
from edgecollect.config import Config, _Loader, load, loads
from edgecollect.configtypes import Duration, FieldError, Range, Size, range_unit, split_range
from edgecollect.errors import ConfigError
from edgecollect.sources.registry import KINDS
from edgecollect.tomlpos import key_lines

toml = toml_loader.tomllib  # tomllib, or tomli on Python 3.10


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as err:
        loads(text, "f.toml")
    return str(err.value)


# -- item 8: absurd values, each with its exact message, and loading allocates nothing big ----

ABSURD = [
    ("[batch]\nflush_interval = inf\n", 'f.toml:2: batch.flush_interval: expected a duration from "100ms" to "1h", '
     "found number inf"),
    ('[batch]\nflush_interval = "200000d"\n', 'f.toml:2: batch.flush_interval: expected a duration from "100ms" '
     "to \"1h\", found string '200000d'"),
    ("[batch]\nflush_interval = nan\n", 'f.toml:2: batch.flush_interval: expected a duration from "100ms" to "1h", '
     "found number nan"),
    ("[agent]\nlog_level = 'info'\nself_interval = 0\n", 'f.toml:3: agent.self_interval: expected a duration from '
     '"100ms" to "1h", found integer 0'),
    ("[agent]\nself_interval = inf\n", 'f.toml:2: agent.self_interval: expected a duration from "100ms" to "1h", '
     "found number inf"),
    ('[buffer]\nmax_bytes = "100TiB"\n', 'f.toml:2: buffer.max_bytes: expected a size from "4KiB" to "256MiB" '
     "(or leave it out), found string '100TiB'"),
    ("[buffer]\nmax_points = 1e20\n", "f.toml:2: buffer.max_points: expected an integer from 1 to 10_000_000, "
     "found number 1e+20"),
    ("[buffer]\nmax_points = 100_000_000_000_000_000_000\n", "f.toml:2: buffer.max_points: expected an integer "
     "from 1 to 10_000_000, found integer 100000000000000000000"),
    ("[buffer]\n\nmax_points = 4000000000\n", "f.toml:3: buffer.max_points: expected an integer from 1 to "
     "10_000_000, found integer 4000000000"),
    ('[spool]\nmax_size = "99999999999999999999999999999999TiB"\n', 'f.toml:2: spool.max_size: expected a size '
     "from \"4KiB\" to \"4TiB\", found string '99999999999999999999999999999999TiB'"),
    ("[spool]\nmax_age = 1e308\n", 'f.toml:2: spool.max_age: expected a duration from "1m" to "3650d", '
     "found number 1e+308"),
    ('[agent]\nresource = { site = "a", weight = nan }\n', "f.toml:2: agent.resource.weight: expected a string or "
     "an integer or a finite number or true or false, found number nan"),
]


@pytest.mark.parametrize(("text", "message"), ABSURD, ids=[t.replace("\n", " ") for t, _ in ABSURD])
def test_absurd_value_is_refused_on_its_line_without_allocating(text: str, message: str) -> None:
    tracemalloc.start()
    try:
        assert error_of(text) == message
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024**2, f"loading allocated {peak} bytes"


@pytest.mark.parametrize("command", ["check-config", "run"])
def test_run_and_check_config_share_the_check(tmp_path: Path, command: str) -> None:
    path = tmp_path / "gw.toml"
    path.write_text(f"[agent]\nstate_dir = '{tmp_path / 'state'}'\n[batch]\nflush_interval = inf\n")
    args = [str(path)] if command == "check-config" else ["--config", str(path)]
    proc = subprocess.run([sys.executable, "-m", "edgecollect", command, *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f'edgecollect: {path}:4: batch.flush_interval: expected a duration from "100ms" '
                                   'to "1h", found number inf')
    assert not (tmp_path / "state").exists()


def test_a_number_too_long_for_python_is_a_syntax_error_with_its_line() -> None:
    text = "[buffer]\nmax_points = " + "9" * 5000 + "\n"
    assert error_of(text) == "f.toml:2: (syntax): expected numbers of at most 4300 digits, found a longer one"


CHECK_WITH_PEAK = """
import sys, tracemalloc
from edgecollect.cli import main
tracemalloc.start()
code = main(["check-config", sys.argv[1]])
print("PEAK", code, tracemalloc.get_traced_memory()[1])
"""


def check_config_peak(path: Path) -> tuple[int, int, str]:
    proc = subprocess.run([sys.executable, "-c", CHECK_WITH_PEAK, str(path)], capture_output=True, text=True,
                          timeout=120)
    last = proc.stdout.strip().splitlines()[-1].split()
    assert last[0] == "PEAK", proc.stdout + proc.stderr
    return int(last[1]), int(last[2]), proc.stderr


def test_check_config_refuses_a_16_gb_ring_without_allocating_it(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("[buffer]\nmax_points = 4000000000\n")
    code, peak, stderr = check_config_peak(path)
    assert code == 2
    assert f"{path}:2: buffer.max_points: expected an integer from 1 to 10_000_000, found integer 4000000000" in stderr
    assert peak < 8 * 1024**2, peak


def test_check_config_does_not_allocate_the_rings_of_a_valid_config(tmp_path: Path) -> None:
    # 10 million points is a 370 MB ring at run time; checking the file must not build it.
    path = tmp_path / "biggest.toml"
    path.write_text("[buffer]\nmax_points = 10_000_000\n")
    code, peak, stderr = check_config_peak(path)
    assert code == 0, stderr
    assert peak < 8 * 1024**2, peak


# -- every numeric field of every config dataclass: a declared range, nan/inf refused --------

REQUIRED = {"port": "'/dev/ttyUSB0'", "endpoint": "'collector.example:4317'", "topic": "'tele/+/SENSOR'",
            "name": "'meter'", "unit": "1", "metric": "'m'", "address": "0"}
REQUIRED_IN = {"OpampConfig": {"endpoint": "'https://opamp.example:4320/v1/opamp'"}}
# Keys a table needs although none of its fields is required on its own (one transport of two).
NEEDS = {"ModbusConfig": "endpoint = '127.0.0.1:502'\n"}


def _strip(hint: Any) -> tuple[Any, Range | None]:
    inner, rng = split_range(hint)
    return range_unit(inner), rng


def tables() -> Iterator[tuple[type, str, str]]:
    """(dataclass, TOML that opens its table with any required keys, the key prefix errors show)."""

    def walk(cls: type, header: str, dotted: str, shown: str) -> Iterator[tuple[type, str, str]]:
        hints = typing.get_type_hints(cls, include_extras=True)
        values = {**REQUIRED, **REQUIRED_IN.get(cls.__name__, {})}
        required = "".join(f"{f.name} = {values[f.name]}\n" for f in dataclasses.fields(cls)
                           if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
        required += NEEDS.get(cls.__name__, "")
        yield cls, header + required, shown
        for f in dataclasses.fields(cls):
            inner, _ = _strip(hints[f.name])
            args = typing.get_args(inner)
            sub, sub_shown = f"{dotted}.{f.name}", f"{shown}.{f.name}"
            if isinstance(inner, type) and dataclasses.is_dataclass(inner):
                yield from walk(inner, header + required + f"[{sub}]\n", sub, sub_shown)
            elif typing.get_origin(inner) is tuple and args and dataclasses.is_dataclass(args[0]):
                yield from walk(args[0], header + required + f"[[{sub}]]\n", sub, sub_shown + "[0]")

    # Every table of Config (a section another module adds as a dataclass field is walked too),
    # then the lazily imported ones: every source kind of the registry and the upstream.
    for name, hint in typing.get_type_hints(Config).items():
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            yield from walk(hint, f"[{name}]\n", name, name)
    for kind in KINDS.values():
        name, cls = f"sources.{kind.kind}", kind.config_class()
        if kind.array:
            yield from walk(cls, f"[[{name}]]\n", name, f"{name}[0]")
        else:
            yield from walk(cls, f"[{name}]\n", name, name)
    upstream = importlib.import_module("edgecollect.exporters.upstream").UpstreamConfig
    yield from walk(upstream, "[upstream]\n", "upstream", "upstream")
    opamp = importlib.import_module("edgecollect.opamp.config").OpampConfig
    yield from walk(opamp, "[opamp]\n", "opamp", "opamp")
    for kind, cls in importlib.import_module("edgecollect.processors.config").KINDS.items():
        yield from walk(cls, f"[[processors]]\nkind = '{kind}'\n", "processors", "processors[0]")


NUMBERS = (int, float, Size, Duration)


def numeric_fields() -> Iterator[tuple[str, str, Any, Range | None]]:
    for cls, header, dotted in tables():
        for name, hint in typing.get_type_hints(cls, include_extras=True).items():
            inner, rng = _strip(hint)
            if inner in NUMBERS:
                yield header, f"{dotted}.{name}", inner, rng


FIELDS = list(numeric_fields())
IDS = [key for _, key, _, _ in FIELDS]


def test_the_walk_finds_the_fields_it_should() -> None:
    assert {"batch.flush_interval", "sources.mqtt[0].subscribe[0].qos", "sources.serial[0].baud", "upstream.rate_limit",
            "sources.host.interval", "agent.self_max_series"} <= set(IDS)


@pytest.mark.parametrize(("header", "key", "unit", "rng"), FIELDS, ids=IDS)
def test_every_number_declares_a_range(header: str, key: str, unit: Any, rng: Range | None) -> None:
    assert rng is not None, f"{key}: declare Annotated[..., Range(min, max)] (see configtypes.py)"
    low, high = rng.bounds(unit)
    assert math.isfinite(low) and math.isfinite(high) and low <= high


def _toml(number: float, unit: Any) -> str:
    return str(int(number)) if unit in (int, Size) else repr(float(number))


@pytest.mark.parametrize(("header", "key", "unit", "rng"), FIELDS, ids=IDS)
def test_every_number_refuses_nan_inf_and_values_past_its_range(
    header: str, key: str, unit: Any, rng: Range | None
) -> None:
    assert rng is not None
    low, high = rng.bounds(unit)
    name = key.rsplit(".", 1)[1]
    # A required key under test replaces the value its table was opened with.
    header = "".join(row for row in header.splitlines(keepends=True) if not row.startswith(f"{name} = "))
    line = header.count("\n") + 1
    below = low - 1 if low >= 1 else (low * 2 - 1 if low < 0 else -1)
    outside = ["nan", "inf", "-inf", _toml(high * 2 + 1, unit), _toml(below, unit)]
    if unit is int:
        outside.append("1.5")
    for written in outside:
        message = error_of(f"{header}{name} = {written}\n")
        assert message.startswith(f"f.toml:{line}: {key}: expected "), message
        assert rng.text() in message, message


# -- item 9: every config dataclass reports a representative error on the key's own line ------

ON_THE_KEY_LINE = [
    # the three reported as line 1 before
    ("[[sources.serial]]\nport = '/dev/ttyUSB0'\nbaud = 0\n",
     "f.toml:3: sources.serial[0].baud: expected an integer from 50 to 12_000_000, found integer 0"),
    ("[[sources.mqtt]]\nserver = 'mqtt://b:1883'\nqos = 3\n",
     "f.toml:3: sources.mqtt[0].qos: expected an integer from 0 to 2, found integer 3"),
    ("[upstream]\nendpoint = 'c:4317'\nmax_in_flight = 0\n",
     "f.toml:3: upstream.max_in_flight: expected an integer from 1 to 1024, found integer 0"),
    # one per config dataclass
    ("[agent]\nlog_level = 'info'\nmax_series = 0\n",
     "f.toml:3: agent.max_series: expected an integer from 1 to 1_000_000, found integer 0"),
    ("[buffer]\noverflow = 'drop_oldest'\nmax_log_bytes = '1GiB'\n",
     "f.toml:3: buffer.max_log_bytes: expected a size from \"4KiB\" to \"64MiB\", found string '1GiB'"),
    ("[batch]\nflush_interval = '1s'\nmax_points = 0\n",
     "f.toml:3: batch.max_points: expected an integer from 1 to 1_000_000, found integer 0"),
    ("[spool]\nmax_age = '30d'\nmax_size = 100\n",
     'f.toml:3: spool.max_size: expected a size from "4KiB" to "4TiB", found integer 100'),
    ("[sources.host]\nenabled = true\ninterval = 0\n",
     'f.toml:3: sources.host.interval: expected a duration from "100ms" to "1d", found integer 0'),
    # __post_init__ rules that involve more than one value name the key they blame
    ("[[sources.mqtt]]\nserver = 'mqtt://b:1883'\nreconnect_min = '5s'\nreconnect_max = '2s'\n",
     "f.toml:4: sources.mqtt[0].reconnect_max: expected at least reconnect_min, found string '2s'"),
    ("[[sources.mqtt]]\nserver = 'mqtt://b:99999'\n",
     "f.toml:2: sources.mqtt[0].server: expected a valid port in server, found string 'mqtt://b:99999'"),
    ("[[sources.mqtt]]\n[[sources.mqtt.subscribe]]\ntopic = 'a/#/b'\n",
     "f.toml:3: sources.mqtt[0].subscribe[0].topic: expected '#' only as the last topic level, found string 'a/#/b'"),
    ("[[sources.mqtt]]\n[[sources.mqtt.subscribe]]\ntopic = 'a/b'\nformat = 'json'\ntypes = { e = 'counter' }\n",
     "f.toml:5: sources.mqtt[0].subscribe[0].types.e: expected one of 'gauge', 'cumulative', 'delta', "
     "'updown', 'int', 'float', 'state', 'log', 'ignore', found string 'counter'"),
    ("[[sources.mqtt]]\n[[sources.mqtt.subscribe]]\ntopic = 'a/b'\nqos = 7\n",
     "f.toml:4: sources.mqtt[0].subscribe[0].qos: expected an integer from 0 to 2 (or leave it out), found integer 7"),
    ("[[sources.serial]]\nport = '/dev/ttyUSB0'\nframing = 'regex'\npattern = '(?P<t>['\n",
     "f.toml:4: sources.serial[0].pattern: expected a Python regular expression (unterminated character set at "
     "position 6), found string '(?P<t>['"),
    ("[[sources.serial]]\nport = '/dev/ttyUSB0'\nlog_patterns = [\n  'ok',\n  '(',\n]\n",
     "f.toml:3: sources.serial[0].log_patterns[1]: expected a Python regular expression (missing ), unterminated "
     "subpattern at position 0), found string '('"),
    ("[[sources.serial]]\nport = '/dev/ttyUSB0'\nframing = 'csv'\n",
     'f.toml:1: sources.serial[0].header: expected the column names csv framing needs, e.g. header = ["temp", '
     '"hum"], found nothing (left at its default)'),
    ("[upstream]\nendpoint = 'c:4317'\nretry_initial = '10s'\nretry_max = '2s'\n",
     "f.toml:4: upstream.retry_max: expected at least retry_initial, found string '2s'"),
    ("[upstream]\nendpoint = 'c:4317'\nheaders = { 'x y' = 'v' }\n",
     "f.toml:3: upstream.headers.x y: expected header names without spaces, found string 'v'"),
    ("[upstream]\nendpoint = 'http://c:4318'\nprotocol = 'otlp_http'\n",
     "f.toml:2: upstream.endpoint: expected https://, or tls.insecure = true to allow plaintext http://, "
     "found string 'http://c:4318'"),
    ("[upstream]\nendpoint = 'c:4317'\n[upstream.tls]\nca_file = '/ca.pem'\ncert_file = '/c.pem'\n",
     "f.toml:5: upstream.tls.cert_file: expected tls.cert_file and tls.key_file together (mTLS needs both), or "
     "neither, "
     "found string '/c.pem'"),
    ("[upstream]\nendpoint = 'https://c:4317'\n[upstream.tls]\ninsecure = true\n",
     "f.toml:4: upstream.tls.insecure: expected false with an https:// endpoint (pick one), found boolean True"),
]


@pytest.mark.parametrize(("text", "message"), ON_THE_KEY_LINE,
                         ids=[m.split(": expected")[0] for _, m in ON_THE_KEY_LINE])
def test_errors_point_at_the_key_line(text: str, message: str) -> None:
    assert error_of(text) == message


@dataclass(frozen=True, slots=True)
class _NewSection:
    """How another module's config dataclass uses the mechanism (see configtypes.py)."""

    low: Annotated[int, Range(1, 10)] = 1
    high: Annotated[int, Range(1, 10)] = 2
    period: Annotated[Duration | None, Range("1s", "1h")] = None
    legacy: int = 0

    def __post_init__(self) -> None:
        if self.high < self.low:
            raise FieldError("high", "at least low")
        if self.legacy < 0:
            raise ValueError("legacy must be non-negative")


def _load_section(text: str) -> _NewSection:
    loader = _Loader("n.toml", key_lines(text))
    return loader.convert(toml.loads(text)["new"], _NewSection, ("new",))  # type: ignore[no-any-return]


def test_a_new_section_gets_ranges_and_key_lines_from_its_declarations() -> None:
    assert _load_section("[new]\nlow = 2\nhigh = 3\nperiod = '1m'\n") == _NewSection(2, 3, Duration(60.0))
    with pytest.raises(ConfigError, match=r"^n.toml:3: new.high: expected at least low, found integer 1$"):
        _load_section("[new]\nlow = 2\nhigh = 1\n")
    with pytest.raises(ConfigError, match=r'^n.toml:2: new.period: expected a duration from "1s" to "1h" \(or leave'):
        _load_section("[new]\nperiod = '2h'\n")
    with pytest.raises(ConfigError, match=r"^n.toml:3: new.legacy: expected non-negative, found integer -1$"):
        _load_section("[new]\nlow = 1\nlegacy = -1\n")


# -- item 11: state_dir relative to the config file, clear errors, per-source series caps -----

def test_relative_state_dir_resolves_against_the_config_files_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    (conf_dir / "edgecollect.toml").write_text("[agent]\nstate_dir = 'state'\n")
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load(Path("..") / "etc" / "edgecollect.toml")
    assert cfg.state_dir() == conf_dir / "state"
    assert cfg.state_dir().is_absolute()
    assert not (elsewhere / "state").exists() and not (conf_dir / "state").exists()  # loading creates nothing


def test_reference_config_says_how_a_relative_state_dir_resolves() -> None:
    reference = (Path(__file__).resolve().parents[2] / "configs" / "edgecollect.toml").read_text()
    reference = " ".join(reference.replace("\n#", " ").split())  # explanations are wrapped
    assert "A relative state_dir is resolved against the folder of this config file" in reference


def test_dangling_symlink_state_dir_is_a_clear_error_for_check_config_and_run(tmp_path: Path) -> None:
    link = tmp_path / "state"
    link.symlink_to(tmp_path / "gone")
    path = tmp_path / "edgecollect.toml"
    path.write_text(f"[agent]\nlog_level = 'info'\nstate_dir = '{link}'\n")
    expected = (f"{path}:3: agent.state_dir: expected a directory, or a path where one can be made, found {link}: "
                f"a symlink to {tmp_path / 'gone'}, which cannot be followed (No such file or directory)")
    for command in (["check-config", str(path)], ["run", "--config", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "edgecollect", *command], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == f"edgecollect: {expected}"
        assert "File exists" not in proc.stderr
    assert not (tmp_path / "gone").exists()


def test_state_dir_under_a_file_or_a_dangling_parent_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "parent").symlink_to(tmp_path / "missing")
    assert error_of(f"[agent]\nstate_dir = '{tmp_path / 'file'}'\n").endswith(
        f"found {tmp_path / 'file'}: exists and is not a directory")
    assert error_of(f"[agent]\nstate_dir = '{tmp_path / 'file' / 'sub'}'\n").endswith(
        f"found {tmp_path / 'file'}: exists and is not a directory")
    assert error_of(f"[agent]\nstate_dir = '{tmp_path / 'parent' / 'state'}'\n").startswith(
        "f.toml:2: agent.state_dir: expected a directory, or a path where one can be made, "
        f"found {tmp_path / 'parent'}: a symlink to {tmp_path / 'missing'}, which cannot be followed")


def test_each_source_and_the_agent_itself_have_their_own_series_budget() -> None:
    defaults = load(None)
    assert defaults.agent.self_max_series == 2_000 and defaults.agent.max_series == 50_000
    cfg = loads(
        "[agent]\nself_max_series = 500\n[sources.host]\nmax_series = 300\n"
        "[[sources.mqtt]]\nmax_series = 100\n[[sources.serial]]\nport = '/dev/ttyUSB0'\nmax_series = 200\n"
    )
    assert cfg.agent.self_max_series == 500 and cfg.sources.host.max_series == 300
    assert cfg.sources.mqtt[0].max_series == 100 and cfg.sources.serial[0].max_series == 200
    assert error_of("[agent]\nself_max_series = 10\n") == (
        "f.toml:2: agent.self_max_series: expected an integer from 100 to 100_000, found integer 10")
