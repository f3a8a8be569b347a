"""Reading a spooled batch through the contract: what BatchView says about real batches (built by
batch.py, written as IPC bytes, framed into a spool file and shown by `spool show`)."""

from __future__ import annotations

import io
from array import array
from pathlib import Path

import pyarrow as pa
import pytest

from edgecollect import spoolfile, spooltool
from edgecollect.batch import Rows, build_logs, build_metrics
from edgecollect.buffer import FLAG_INT
from edgecollect.format import (
    COL_FLAGS,
    COL_NAME,
    FLAG_CLOCK_UNSYNCED,
    LOGS_FORMAT,
    META_DOWNSAMPLED,
    META_FORMAT,
    METRICS_FORMAT,
)
from edgecollect.format.reader import BatchFormatError, format_of, head_metadata, read_batch, to_ipc, view
from edgecollect.model import LogRecord, Resource, Series, SeriesRegistry, attrs

S = 1_000_000_000
T0 = 1_796_000_000 * S  # 2026-11-30 00:53:20 UTC
RESOURCE = Resource(attrs({"host.name": "gw-1"}))


def metrics_batch(boot_id: str = "boot-a") -> pa.RecordBatch:
    registry = SeriesRegistry()
    temp = registry.intern(Series("hw.temperature", "Cel", "gauge", attrs(device="t1")))
    count = registry.intern(Series("edgecollect.mqtt.messages", "1", "cumulative"), T0)
    rows = Rows(array("I", [temp, count, temp]), array("q", [T0 + 20 * S, T0 + 5 * S, T0]),
                array("d", [21.5, 0.0, 21.0]), array("q", [0, 7, 0]),
                array("B", [FLAG_CLOCK_UNSYNCED, FLAG_INT, 0]))
    return build_metrics(rows, registry, RESOURCE, boot_id)


def test_reads_what_a_metrics_batch_says_about_itself() -> None:
    spooled = read_batch(to_ipc(metrics_batch()))
    assert (spooled.format_name, spooled.signal, spooled.points, spooled.boot_id) == (
        METRICS_FORMAT, "metrics", 3, "boot-a")
    assert spooled.resource() == {"host.name": "gw-1"}
    assert spooled.time_range_ns() == (T0, T0 + 20 * S)
    assert sorted(spooled.flags.to_pylist()) == [0, 0, FLAG_CLOCK_UNSYNCED]  # the ring's FLAG_INT is not stored
    assert sorted(spooled.values(COL_NAME)) == ["edgecollect.mqtt.messages", "hw.temperature", "hw.temperature"]
    assert spooled.merge_key == (METRICS_FORMAT.encode(), b'{"host.name":"gw-1"}', b"boot-a")
    assert read_batch(to_ipc(metrics_batch("boot-b"))).merge_key != spooled.merge_key


def test_reads_a_logs_batch_and_an_empty_one() -> None:
    records = [LogRecord(T0 + i * S, f"line {i}") for i in range(2)]
    spooled = read_batch(to_ipc(build_logs(records, RESOURCE, "boot-a")))
    assert (spooled.format_name, spooled.signal, spooled.points) == (LOGS_FORMAT, "logs", 2)
    assert spooled.time_range_ns() == (T0, T0 + S)
    assert read_batch(to_ipc(build_logs([], RESOURCE, "boot-a"))).time_range_ns() is None


def test_a_batch_off_the_contract_reads_as_unknown_and_fails_by_column_name() -> None:
    foreign = pa.RecordBatch.from_arrays([pa.array([1, 2])], names=["x"])
    spooled = view(foreign.replace_schema_metadata({META_FORMAT: b"metrics/9", b"edgecollect.resource": b"[1]"}))
    assert (spooled.format_name, spooled.signal, spooled.boot_id) == ("metrics/9", None, "")
    assert spooled.resource() == {}  # a resource that is not a JSON object maps to none
    assert not spooled.has(COL_FLAGS)
    with pytest.raises(BatchFormatError, match="no column 'flags'"):
        spooled.column(COL_FLAGS)
    assert format_of(None) == "" and view(foreign).resource() == {}


def test_schema_metadata_is_read_from_the_head_of_the_bytes() -> None:
    batch = metrics_batch()
    data = to_ipc(batch.replace_schema_metadata({**batch.schema.metadata, META_DOWNSAMPLED: b"300"}))
    head = head_metadata(data[:4096])  # the schema message, without the record batch
    assert head[META_DOWNSAMPLED] == b"300" and format_of(head) == METRICS_FORMAT


def test_spool_show_prints_format_boot_and_time_range(tmp_path: Path) -> None:
    payload = to_ipc(metrics_batch())
    (tmp_path / f"{1:016x}{spoolfile.SUFFIX}").write_bytes(spoolfile.frame(1, "metrics", T0, 3, payload))
    out = io.StringIO()
    assert spooltool.show(tmp_path, "1", out) == spooltool.EXIT_OK
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("batch 1: metrics, 3 points")
    assert lines[1] == "metrics/1, boot boot-a, times 2026-11-30 00:53:20..2026-11-30 00:53:40 UTC"
