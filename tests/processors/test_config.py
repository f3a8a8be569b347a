"""check-config on [[processors]]: FILE:LINE errors, and --explain."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgecollect.cli import main
from edgecollect.config import loads
from edgecollect.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("body", "line", "text"),
    [
        (
            'kind = "smooth"',
            4,
            "processors[0].kind: expected one of filter, attributes, transform, deadband, aggregate",
        ),
        ('kind = "filter"\nexclude = ["ok", "bad[glob"]', 5, "processors[0].exclude: expected globs"),
        ('kind = "filter"\nsources = [""]\nexclude = ["x"]', 5, "processors[0].sources: expected globs"),
        (
            'kind = "aggregate"\nmetrics = ["system.network.*"]\nfunctions = ["mean", "last"]',
            6,
            "processors[0].functions: expected suited to the metric kind: mean apply to gauges, and system.network.io",
        ),
        ('kind = "deadband"\nthreshold = 1.0\npercent = 5.0', 6, "processors[0].percent"),
        ('kind = "aggregate"\nfunctions = ["median"]', 5, "processors[0].functions[0]: expected one of 'min'"),
        ('kind = "filter"\nexlude = ["x"]', 5, "processors[0].exlude: expected one of"),
        ('kind = "filter"', 3, "processors[0].include: expected non-empty, or exclude"),
    ],
)
def test_bad_processor_is_a_file_line_error(body: str, line: int, text: str) -> None:
    toml = f"[agent]\nmax_series = 10\n[[processors]]\n{body}\n"
    with pytest.raises(ConfigError) as info:
        loads(toml, "gw.toml")
    assert str(info.value).startswith(f"gw.toml:{line}: {text}"), str(info.value)


def test_second_processor_error_names_its_own_line() -> None:
    toml = '[[processors]]\nkind = "filter"\nexclude = ["a"]\n\n[[processors]]\nkind = "transform"\nscale = "x"\n'
    with pytest.raises(ConfigError) as info:
        loads(toml, "gw.toml")
    assert str(info.value).startswith("gw.toml:7: processors[1].scale: expected a number from"), str(info.value)


def test_explain_prints_each_sources_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "gw.toml"
    cfg.write_text(f"""
[agent]
state_dir = "{tmp_path / "state"}"

[[processors]]
kind = "deadband"
name = "quiet-sensors"
metrics = ["sensor.*"]
threshold = 0.2
max_silence = "5m"

[[processors]]
kind = "filter"
sources = ["self"]
exclude = ["edgecollect.batch.*"]
""")
    assert main(["check-config", "--explain", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "host:\n  quiet-sensors [metrics sensor.*] deadband: emit on a change >= 0.2, at least every 300s" in out
    assert "self:\n  filter.1 [metrics *] filter: exclude ['edgecollect.batch.*']\n  -> ring" in out


def test_lte_example_explains() -> None:
    assert main(["check-config", "--explain", str(REPO / "configs" / "lte-gateway.toml")]) == 0
