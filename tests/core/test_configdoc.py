"""The reference config explains every key: its meaning, every allowed value, range and default."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import ClassVar, Literal

from edgecollect.config import loads
from edgecollect.configdoc import explain, render, tables, undocumented
from edgecollect.configtypes import Key, KeyDocs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REFERENCE = Path(__file__).resolve().parents[2] / "configs" / "edgecollect.toml"
_KEY_LINE = re.compile(r"^# (\w+) = (.*)$")
_TABLE_LINE = re.compile(r"^(?:# )?(\[\[?[\w.]+\]\]?)$")


def test_every_key_of_every_table_is_explained() -> None:
    problems = [f"[{t.name}] {p}" for t in tables() for p in undocumented(t.cls)]
    assert problems == []
    assert [t.name for t in tables() if not t.intro.strip()] == []


@dataclasses.dataclass(frozen=True)
class _Toy:
    mode: Literal["fast", "safe"] = "fast"
    limit: int | None = None
    label: str = ""
    KEY_DOCS: ClassVar[KeyDocs] = {"mode": Key("How.", choices={"fast": "quick"}), "limit": "At most.", "gone": "?"}


def test_a_key_without_explanation_a_choice_without_meaning_or_a_stale_entry_is_named() -> None:
    assert undocumented(_Toy) == [
        "gone: explained but not a key",
        "mode: allows ['fast', 'safe'], explains ['fast']",
        "limit: no default and no example",
        "label: no explanation",
    ]


@dataclasses.dataclass(frozen=True)
class _ToyKind(_Toy):
    extra: bool = False
    KEY_DOCS: ClassVar[KeyDocs] = {"extra": "More.", "label": "Named."}


def test_a_subclass_declares_only_its_own_keys_and_may_reword_a_base_key() -> None:
    assert undocumented(_ToyKind) == [
        "gone: explained but not a key",
        "mode: allows ['fast', 'safe'], explains ['fast']",
        "limit: no default and no example",
    ]


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """Each key of the reference with the comment lines above it (back to the previous key)."""
    out: list[tuple[str, list[str]]] = []
    lines = text.splitlines()
    above: list[str] = []
    for i, line in enumerate(lines):
        after = lines[i + 1] if i + 1 < len(lines) else ""
        m = _KEY_LINE.match(line)
        if m and after in ("#", ""):
            out.append((m.group(1), above))
            above = []
        elif line not in ("#", "") and not _TABLE_LINE.match(line):
            above.append(line)
        else:
            above = []
    return out


def test_the_checked_in_reference_explains_each_key_and_lists_each_choice() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    assert text == render(), "regenerate: python -m edgecollect.configdoc > configs/edgecollect.toml"
    sections = _sections(text)
    assert len(sections) > 90
    assert [key for key, above in sections if not any(len(line) > 4 for line in above)] == []
    choice_keys = {"log_level", "clock", "overflow", "when_full", "sync", "protocol", "format", "types", "time",
                   "naive_time", "precision", "retained", "parity", "stopbits", "framing", "compression"}
    listed = {key for key, above in sections if any(line.startswith("# Allowed values") for line in above)}
    assert choice_keys <= listed  # (new sections add their own)
    for leak in ("None", "(unset)", "(required)", "TYPES", "/ 37", "one of TYPES"):
        assert leak not in text
    assert "when set it overrides\n# max_points" in text


def test_the_reference_uncommented_is_a_valid_config_with_every_example() -> None:
    """Every key line is TOML, every example passes its range, every table header is real."""
    text = REFERENCE.read_text(encoding="utf-8")
    keys = {key for key, _ in _sections(text)}
    lines = []
    for line in text.splitlines():
        header, key = _TABLE_LINE.match(line), _KEY_LINE.match(line)
        if header:
            lines.append(header.group(1))
        elif key and key.group(1) in keys:
            lines.append(line[2:])
    uncommented = "\n".join(lines) + "\n"
    assert tomllib.loads(uncommented)
    cfg = loads(uncommented)
    assert cfg.buffer.max_bytes == 4 * 1024 * 1024
    assert cfg.sources.mqtt[0].subscribe[0].topic == "tele/{device}/SENSOR"
    assert cfg.sources.serial[0].port == "/dev/ttyUSB0"
    assert cfg.upstream.endpoint == "collector.example:4317"


@dataclasses.dataclass(frozen=True)
class _ToyChoices:
    shape: Literal["round", "square"] | None = None
    colours: tuple[Literal["red", "blue"], ...] = ("red",)
    KEY_DOCS: ClassVar[KeyDocs] = {
        "shape": Key("Its shape.", choices={"round": "a disc"}, example='"round"'),
        "colours": Key("Its colours.", choices={"red": "warm"}),
    }


def test_the_choices_of_an_unset_key_and_of_each_entry_of_a_list_must_be_explained() -> None:
    assert undocumented(_ToyChoices) == [
        "shape: allows ['round', 'square'], explains ['round']",
        "colours: allows ['red', 'blue'], explains ['red']",
    ]


def test_a_key_whose_default_alone_would_not_work_shows_its_example_and_says_the_default() -> None:
    hint = str
    lines = explain("endpoint", hint, "", Key("Where.", example='"host:502"'))
    assert lines == ["# Where. Empty by default; for example:", '# endpoint = "host:502"']
    lines = explain("label", hint, "x", Key("Named.", example='"y"'))
    assert lines == ['# Named. By default "x"; for example:', '# label = "y"']
