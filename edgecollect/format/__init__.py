"""The spooled-batch contract: the one place that names what a batch carries.

A spooled batch (design.md, "The spooled batch is plain Arrow") is one Arrow IPC stream whose
schema metadata says what it is and whose columns hold one row per sample or log record. Every
module that writes, reads, rewrites or sends a batch takes these names from here: the format
names and their version, the schema metadata keys, the per-row flag bits and what they mean
upstream, the signals, and the column names. `reader.py` reads a batch through them; clock repair
of spooled batches (`clockrepair.py`) lives next to it. `tests/format/test_contract.py` fails
when another module spells one of these keys or flags itself.

This module is pure Python on purpose: `clock.py` stamps the flag bits and is imported before
pyarrow may load (footprint.before_imports), so nothing here may import pyarrow.

Metrics (`metrics/1`), one row per sample, rows grouped by series and in time order within one:

    name                  dictionary<int32, utf8>    metric name (OTel semantic conventions)
    unit                  dictionary<int32, utf8>    UCUM unit
    kind                  dictionary<int8, utf8>     gauge | cumulative | delta | updown
    attributes            dictionary<int32, utf8>    the series' attributes as a JSON object
    start_time_unix_nano  timestamp[ns, UTC]         start of a cumulative series, else null
    time_unix_nano        timestamp[ns, UTC]
    double_value          float64                    null when the value is an integer
    int_value             int64                      null when the value is a float
    flags                 uint8                      FLAG_* bits below

Logs (`logs/1`): time_unix_nano, severity_number, severity_text, body_type (the OTel value codes
BODY_*) with one typed body column per code, attributes (JSON) and flags.

Schema metadata: META_FORMAT (the format name), META_RESOURCE (resource attributes as JSON),
META_BOOT_ID (the boot whose clock stamped the rows; clock repair needs it), and on a
downsampled batch (downsample.py) META_DOWNSAMPLED (window in seconds) and
META_DOWNSAMPLED_RANGE ("<first window start ns>-<last window end ns>").

Changing any value here changes the on-disk format or the wire: it needs a new format version.
"""

from __future__ import annotations

from typing import Literal

# -- formats -------------------------------------------------------------------------------------

FORMAT_VERSION = 1
Signal = Literal["metrics", "logs"]
# Order matters: a spool file's header stores the signal as its index here (spoolfile.py).
SIGNALS: tuple[Signal, ...] = ("metrics", "logs")
METRICS_FORMAT = f"metrics/{FORMAT_VERSION}"
LOGS_FORMAT = f"logs/{FORMAT_VERSION}"
FORMAT_OF: dict[Signal, str] = {"metrics": METRICS_FORMAT, "logs": LOGS_FORMAT}

# -- schema metadata keys ------------------------------------------------------------------------

META_FORMAT = b"edgecollect.format"
META_RESOURCE = b"edgecollect.resource"
META_BOOT_ID = b"edgecollect.boot_id"
META_DOWNSAMPLED = b"edgecollect.downsampled"
META_DOWNSAMPLED_RANGE = b"edgecollect.downsampled_range"
# Batches whose values of these keys are equal say the same about their rows (coalesce.py).
MERGE_KEYS = (META_FORMAT, META_RESOURCE, META_BOOT_ID)

# -- flags: one uint8 per row (and per ring slot and LogRecord) ----------------------------------

FLAG_CLOCK_UNSYNCED = 0x01  # stamped while the wall clock was not known to be synchronised
FLAG_TIME_REPAIRED = 0x02  # its time was moved (or confirmed) once the clock synchronised
FLAG_BITS = FLAG_CLOCK_UNSYNCED | FLAG_TIME_REPAIRED  # every bit a spooled row may carry
# Upstream sees the flags as boolean attributes of the point or log record (the OTLP `flags`
# field is not used: its bit 0 means "no recorded value").
FLAG_ATTRIBUTES: tuple[tuple[int, str], ...] = (
    (FLAG_CLOCK_UNSYNCED, "edgecollect.clock.unsynced"),
    (FLAG_TIME_REPAIRED, "edgecollect.time.repaired"),
)

# -- columns -------------------------------------------------------------------------------------

COL_NAME = "name"
COL_UNIT = "unit"
COL_KIND = "kind"
COL_ATTRIBUTES = "attributes"
COL_START_TIME = "start_time_unix_nano"
COL_TIME = "time_unix_nano"
COL_DOUBLE = "double_value"
COL_INT = "int_value"
COL_FLAGS = "flags"
COL_SEVERITY_NUMBER = "severity_number"
COL_SEVERITY_TEXT = "severity_text"
COL_BODY_TYPE = "body_type"
COL_BODY_STR = "body_str"
COL_BODY_INT = "body_int"
COL_BODY_DOUBLE = "body_double"
COL_BODY_BOOL = "body_bool"
COL_BODY_BYTES = "body_bytes"

SERIES_COLUMNS = (COL_NAME, COL_UNIT, COL_KIND, COL_ATTRIBUTES)  # a metrics row's series

# body_type codes: the OTel AnyValue codes, each with its column.
BODY_STR, BODY_INT, BODY_DOUBLE, BODY_BOOL, BODY_BYTES = 1, 2, 3, 4, 7
BODY_COLUMNS: dict[int, str] = {
    BODY_STR: COL_BODY_STR,
    BODY_INT: COL_BODY_INT,
    BODY_DOUBLE: COL_BODY_DOUBLE,
    BODY_BOOL: COL_BODY_BOOL,
    BODY_BYTES: COL_BODY_BYTES,
}


def signal_of(fmt: str) -> Signal | None:
    """The signal a format name stands for; None for a format this version does not know."""
    for signal, name in FORMAT_OF.items():
        if name == fmt:
            return signal
    return None


__all__ = [
    "BODY_BOOL", "BODY_BYTES", "BODY_COLUMNS", "BODY_DOUBLE", "BODY_INT", "BODY_STR",
    "COL_ATTRIBUTES", "COL_BODY_BOOL", "COL_BODY_BYTES", "COL_BODY_DOUBLE", "COL_BODY_INT",
    "COL_BODY_STR", "COL_BODY_TYPE", "COL_DOUBLE", "COL_FLAGS", "COL_INT", "COL_KIND", "COL_NAME",
    "COL_SEVERITY_NUMBER", "COL_SEVERITY_TEXT", "COL_START_TIME", "COL_TIME", "COL_UNIT",
    "FLAG_ATTRIBUTES", "FLAG_BITS", "FLAG_CLOCK_UNSYNCED", "FLAG_TIME_REPAIRED", "FORMAT_OF",
    "FORMAT_VERSION", "LOGS_FORMAT", "MERGE_KEYS", "META_BOOT_ID", "META_DOWNSAMPLED",
    "META_DOWNSAMPLED_RANGE", "META_FORMAT", "META_RESOURCE", "METRICS_FORMAT", "SERIES_COLUMNS",
    "SIGNALS", "Signal", "signal_of",
]
