from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgecollect.cli import main
from edgecollect.config import Config, load, loads
from edgecollect.errors import ConfigError


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "edgecollect.toml"
    path.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "edgecollect", "check-config", str(path)], capture_output=True, text=True
    )
    return proc.returncode, proc.stderr + proc.stdout


def test_empty_file_and_no_file_are_valid_defaults(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("")
    assert load(tmp_path / "empty.toml") == Config(path=str(tmp_path / "empty.toml"))
    cfg = load(None)
    assert cfg.batch.flush_interval == 10.0 and cfg.spool.max_size == 256 * 1024**2
    assert cfg.upstream is None and cfg.sources.host.enabled


@pytest.mark.parametrize(
    ("text", "line", "key", "expected"),
    [
        ("[agent]\nlog_level = 'info'\n\n[buffer]\nmax_pionts = 5\n", 5, "buffer.max_pionts", "unknown key"),
        ("[batch]\nmax_points = '5000'\n", 2, "batch.max_points", "expected an integer"),
        ("[spool]\nmax_age = '30d'\nmax_size = '64 megs'\n", 3, "spool.max_size", "expected a size"),
        ("\n[batch]\nflush_interval = '10 parsecs'\n", 3, "batch.flush_interval", "expected a duration"),
        ("[buffer]\noverflow = 'drop_random'\n", 2, "buffer.overflow", "one of 'drop_oldest', 'drop_newest'"),
        ("[sources.host]\ninterval = true\n", 2, "sources.host.interval", "expected a duration"),
        ("[agent]\nresource = { site = [1, 2] }\n", 2, "agent.resource.site", "expected a string"),
        ("[sources.gps]\nport = 'x'\n", 1, "sources.gps", "unknown source kind"),
    ],
)
def test_check_config_points_at_the_line_and_key(tmp_path: Path, text: str, line: int, key: str, expected: str) -> None:
    code, output = check(tmp_path, text)
    assert code == 2
    assert f"edgecollect.toml:{line}: {key}: " in output
    assert expected in output


def test_check_config_reports_toml_syntax_errors_with_line(tmp_path: Path) -> None:
    code, output = check(tmp_path, '[agent]\nstate_dir = "/tmp\n')
    assert code == 2 and "edgecollect.toml:2:" in output


def test_check_config_accepts_a_valid_file(tmp_path: Path) -> None:
    code, output = check(tmp_path, "[batch]\nflush_interval = '2s'\nmax_points = 100\n[spool]\nmax_size = '1MiB'\n")
    assert code == 0, output
    assert "ok" in output


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    assert main(["check-config", str(tmp_path / "nope.toml")]) == 2


def test_semantic_checks_are_config_errors_with_the_key_line() -> None:
    with pytest.raises(ConfigError) as err:
        loads("\n[batch]\nmax_points = 0\n", "f.toml")
    assert str(err.value) == "f.toml:3: batch.max_points: expected an integer from 1 to 1_000_000, found integer 0"


def test_sizes_and_durations_parse() -> None:
    cfg = loads("[spool]\nmax_size = '64MiB'\nmax_age = '2h'\n[batch]\nflush_interval = '250ms'\n")
    assert cfg.spool.max_size == 64 * 1024 * 1024
    assert cfg.spool.max_age == 7200.0
    assert cfg.batch.flush_interval == 0.25


REPO = Path(__file__).resolve().parents[2]


def test_reference_config_documents_every_key_with_its_default() -> None:
    from edgecollect.configdoc import render

    reference = (REPO / "configs" / "edgecollect.toml").read_text()
    assert reference == render(), "regenerate: python -m edgecollect.configdoc > configs/edgecollect.toml"
    assert load(REPO / "configs" / "edgecollect.toml") == Config(path=str(REPO / "configs" / "edgecollect.toml"))


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_is_valid(path: Path) -> None:
    assert main(["check-config", str(path)]) == 0
