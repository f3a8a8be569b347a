from __future__ import annotations

import pytest

from edgecollect.sources.lineprotocol import Field, LineError, parse_line


def test_types_escapes_and_timestamp() -> None:
    line = parse_line(
        'weather,site=a\\ b,k\\,x=v t=21.5,n=-3i,u=7u,on=t,off=FALSE,s="x \\"y\\", z" 1700000000000000000'
    )
    assert line.measurement == "weather"
    assert line.tags == (("site", "a b"), ("k,x", "v"))
    assert line.fields == (
        Field("t", "float", 21.5),
        Field("n", "int", -3),
        Field("u", "uint", 7),
        Field("on", "bool", True),
        Field("off", "bool", False),
        Field("s", "str", 'x "y", z'),
    )
    assert line.timestamp == 1700000000000000000


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("weather", "syntax"),
        ("weather temp", "syntax"),
        ('weather s="open', "syntax"),
        (",t=1 v=1", "syntax"),
        ("weather temp=abc", "value"),
        ("weather temp=nan", "value"),
        ("weather temp=1e999", "value"),
        ("weather temp=1 12:00", "value"),
        ("weather n=1.5i", "value"),
        ("", "syntax"),
        ("# comment", "syntax"),
    ],
)
def test_errors_say_whether_syntax_or_value(text: str, kind: str) -> None:
    with pytest.raises(LineError) as err:
        parse_line(text)
    assert err.value.kind == kind


def test_huge_integers_parse_and_are_left_to_the_caller() -> None:
    assert parse_line("m big=99999999999999999999u").fields[0].value == 99999999999999999999
