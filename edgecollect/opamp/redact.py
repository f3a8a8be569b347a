"""The running config as it may leave the box: TOML with every secret redacted.

A literal password, token, key or header value is replaced by "<redacted>"; a reference
(`env:NAME`, `file:PATH`) is shown as written, because it tells the operator where the secret comes
from without carrying it. A password inside a URL (`mqtt://user:pw@host`) is redacted too.
Comments and formatting are not kept: the output is re-emitted from the parsed document.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

REDACTED = "<redacted>"

# Key names that hold secrets wherever they appear; every value of a `headers` table is one too
# (Authorization, X-API-Key, ... carry credentials).
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|passphrase|token|secret|api_?key|private_key|credentials?)$", re.I)
_SECRET_TABLES = frozenset({"headers"})
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^/@\s]+)(?P<at>@)", re.I)
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _redact_value(value: str) -> str:
    if value.startswith(("env:", "file:")):
        return value
    return REDACTED if value else ""


def _walk(node: Any, secret: bool) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, secret or bool(_SECRET_KEY.search(k)) or k in _SECRET_TABLES)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_walk(v, secret) for v in node]
    if isinstance(node, str):
        if secret:
            return _redact_value(node)
        return _URL_PASSWORD.sub(lambda m: m["head"] + REDACTED + m["at"], node)
    if secret and isinstance(node, (int, float)) and not isinstance(node, bool):
        return REDACTED  # a numeric PIN is still a secret
    return node


def redact_document(data: dict[str, Any]) -> dict[str, Any]:
    out = _walk(data, False)
    assert isinstance(out, dict)
    return out


def redacted_toml(text: str) -> str:
    """The config `text` with its secrets redacted, as TOML. Raises tomllib.TOMLDecodeError."""
    return dumps(redact_document(tomllib.loads(text)))


# -- a small TOML writer for what tomllib returns ------------------------------------------------


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"not a TOML value: {type(v).__name__}")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _emit(table: dict[str, Any], prefix: str, lines: list[str]) -> None:
    for k, v in table.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            lines.append(f"{_key(k)} = {_scalar(v)}")
    for k, v in table.items():
        name = f"{prefix}{_key(k)}"
        if isinstance(v, dict):
            lines.append(f"\n[{name}]")
            _emit(v, name + ".", lines)
        elif _is_table_array(v):
            for item in v:
                lines.append(f"\n[[{name}]]")
                _emit(item, name + ".", lines)


def dumps(data: dict[str, Any]) -> str:
    lines: list[str] = []
    _emit(data, "", lines)
    return "\n".join(lines).lstrip("\n") + "\n"
