"""The `[opamp]` config table. Checked at load, so a bad value is a `FILE:LINE` config error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from edgecollect.configtypes import Duration, Key, KeyDocs, Range
from edgecollect.exporters.upstream import TlsConfig

_THIRTY_SECONDS = Duration(30.0)


@dataclass(frozen=True, slots=True)
class OpampConfig:
    endpoint: str
    headers: dict[str, str] = field(default_factory=dict)
    tls: TlsConfig = field(default_factory=TlsConfig)
    heartbeat: Annotated[Duration, Range("1s", "1d")] = _THIRTY_SECONDS
    accept_remote_config: bool = False

    KEY_DOCS: ClassVar[KeyDocs] = {
        "endpoint": Key("The OpAMP server's URL (plain HTTP polling). http:// only with tls.insecure = true.",
                        example='"https://opamp.example:4320/v1/opamp"'),
        "headers": 'Extra request headers, such as a token: { authorization = "env:OPAMP_TOKEN" }. Each value '
        'is "env:NAME", "file:PATH" or the text itself; never logged.',
        "tls": "TLS to the server; the same keys as [upstream.tls].",
        "heartbeat": "How often the agent reports its status and asks for a new config (at once when its "
        "health changes). While the server is away it keeps collecting and retries.",
        "accept_remote_config": "Let the server replace this whole config. It is checked like check-config "
        "first; one that fails to start is rolled back. false: a config the server sends is ignored.",
    }

    def __post_init__(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError('endpoint must be a URL such as "https://opamp.example:4320/v1/opamp"')
        if parts.scheme == "http" and not self.tls.insecure:
            raise ValueError("endpoint must be https:// (http:// is plaintext: it needs tls.insecure = true)")
        if parts.scheme == "https" and self.tls.insecure:
            raise ValueError("endpoint must be http:// when tls.insecure = true (https:// with insecure: pick one)")
