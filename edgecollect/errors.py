"""Our error types.

Three kinds of trouble take three paths (style.md, "Errors"):

    ConfigError                 raised once at load, before any thread starts
    EdgecollectFault            an I/O fault at a library edge; caught in run loops, counted, retried
     ├── SpoolFault             the disk under the spool (full, read-only, vanished)
     ├── SourceFault            a device or broker (unplugged port, broker down)
     └── UpstreamFault          the wire (UNAVAILABLE, TLS, DNS)

Bad *data* is never an exception: parsers return an outcome and the source counts it.
"""

from __future__ import annotations


class ConfigError(Exception):
    """A config file that cannot be used, located as FILE:LINE: key: expected, found."""

    def __init__(self, file: str, line: int | None, key: str, expected: str, found: str = "") -> None:
        self.file = file
        self.line = line
        self.key = key
        self.expected = expected
        self.found = found
        where = f"{file}:{line}" if line is not None else file
        message = f"{where}: {key}: expected {expected}"
        if found:
            message += f", found {found}"
        super().__init__(message)


class EdgecollectFault(Exception):
    """An I/O fault at a library edge, raised `from` the library's own exception."""


class SpoolFault(EdgecollectFault):
    pass


class SourceFault(EdgecollectFault):
    pass


class UpstreamFault(EdgecollectFault):
    pass
