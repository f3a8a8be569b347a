"""The `[opamp]` config table. Checked at load, so a bad value is a `FILE:LINE` config error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlsplit

from edgecollect.configtypes import Duration, Range
from edgecollect.exporters.upstream import TlsConfig

_THIRTY_SECONDS = Duration(30.0)


@dataclass(frozen=True, slots=True)
class OpampConfig:
    endpoint: str  # "https://HOST:4320/v1/opamp"; http:// needs tls.insecure = true
    headers: dict[str, str] = field(default_factory=dict)  # values: literal, env:NAME or file:PATH
    tls: TlsConfig = field(default_factory=TlsConfig)  # same options as [upstream.tls]
    # poll interval: status is sent and config fetched this often
    heartbeat: Annotated[Duration, Range("1s", "1d")] = _THIRTY_SECONDS
    accept_remote_config: bool = False  # true: the server may replace this whole config

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError('endpoint must be a URL such as "https://opamp.example:4320/v1/opamp"')
        if parts.scheme == "http" and not self.tls.insecure:
            raise ValueError("endpoint must be https:// (http:// is plaintext: it needs tls.insecure = true)")
        if parts.scheme == "https" and self.tls.insecure:
            raise ValueError("endpoint must be http:// when tls.insecure = true (https:// with insecure: pick one)")
