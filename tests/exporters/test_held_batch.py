"""A held cut reaches the forwarder as the Arrow batch the batcher built, not decoded again from its
bytes: the wire is the same either way, the hand-over happens once, and the hold keeps at most the
newest cut's batches (memory stays bounded by its bytes plus one cut)."""

from __future__ import annotations

import threading
from array import array
from typing import Any

import pyarrow as pa

from edgecollect.batch import Rows, build_metrics, from_ipc, to_ipc
from edgecollect.exporters.contracts import Outgoing, Signal
from edgecollect.exporters.gather import Gatherer
from edgecollect.exporters.otap_encode import OtapStreamEncoder
from edgecollect.model import Resource, Series, SeriesRegistry, attrs
from edgecollect.telemetry import Telemetry
from edgecollect.writebehind import WriteBehind

T = 1_700_000_000_000_000_000
RESOURCE = Resource(attrs({"host.name": "gw-1"}))


class NoSpool:
    """The spool as the gatherer sees it when nothing is spooled."""

    def oldest(self, limit: int, signal: str) -> list[Any]:
        return []


class Ring:
    def mark_durable(self, token: int) -> None:
        pass


def profile_c_batch(offset: int) -> pa.RecordBatch:
    """Ten readings from each of 20 devices, as the MQTT source emits them."""
    reg = SeriesRegistry()
    sids = [reg.intern(Series(f"t{k}", "", "gauge", attrs(device=f"dev{d}"))) for d in range(20) for k in range(10)]
    n = 600
    rows = Rows(array("I", [sids[i % 200] for i in range(n)]), array("q", [T + offset + i * 1000 for i in range(n)]),
                array("d", [20 + ((i + offset) % 97) / 10 for i in range(n)]), array("q", [0] * n),
                array("B", [(i // 50) % 2 for i in range(n)]))
    return build_metrics(rows, reg, RESOURCE, "boot")


def rig() -> tuple[WriteBehind, Gatherer]:
    wb = WriteBehind(lambda signal, payload, points: 1, lambda: 0, Telemetry(), threading.Event())

    def load(spool_id: int, signal: Signal, points: int) -> Outgoing | None:
        raise AssertionError("nothing is spooled")

    return wb, Gatherer(NoSpool(), wb, 5000, load)  # type: ignore[arg-type]


def test_the_wire_from_the_built_batch_is_the_wire_from_its_bytes() -> None:
    built = [profile_c_batch(k * 600_000) for k in range(4)]
    from_built, from_bytes = OtapStreamEncoder("metrics"), OtapStreamEncoder("metrics")
    for b in built:
        decoded = from_ipc(to_ipc(b))
        assert from_built.encode(b).SerializeToString() == from_bytes.encode(decoded).SerializeToString()


def test_a_cut_that_leaves_at_once_reaches_the_forwarder_as_its_built_batch_once() -> None:
    wb, gather = rig()
    batch = profile_c_batch(0)
    assert wb.commit([("metrics", to_ipc(batch), batch.num_rows)], [(Ring(), 1)], [batch])
    [item] = gather.next("metrics", lambda _: False, 1)
    assert item.batch is batch  # no second decode
    wb.resend(item.spool_id)  # e.g. a stream rotation: the same batch goes out again
    [again] = gather.next("metrics", lambda _: False, 1)
    assert again.spool_id == item.spool_id and again.batch is not batch  # decoded from the bytes
    assert again.batch.equals(batch, check_metadata=True)


def test_the_hold_keeps_only_the_newest_cuts_built_batches() -> None:
    wb, gather = rig()
    batches = [profile_c_batch(k * 600_000) for k in range(3)]
    for b in batches:
        assert wb.commit([("metrics", to_ipc(b), b.num_rows)], [(Ring(), 1)], [b])
    held = [wb._held[k] for k in sorted(wb._held)]
    assert [h.batch is not None for h in held] == [False, False, True]
    items = gather.next("metrics", lambda _: False, 3)
    assert [i.batch is b for i, b in zip(items, batches, strict=True)] == [False, False, True]
    for item, b in zip(items, batches, strict=True):
        assert item.batch.equals(b, check_metadata=True)
    assert all(h.batch is None for h in wb._held.values())


def test_a_cut_that_waits_for_the_cadence_keeps_only_its_bytes() -> None:
    wb = WriteBehind(lambda signal, payload, points: 1, lambda: 0, Telemetry(), threading.Event(),
                     send_interval_s=10.0)
    batch = profile_c_batch(0)
    assert wb.commit([("metrics", to_ipc(batch), batch.num_rows)], [], [batch])  # no ack owed: waits
    assert all(h.batch is None for h in wb._held.values())


def test_the_batcher_hands_its_built_batch_to_the_hold() -> None:
    from edgecollect.batcher import Batcher
    from edgecollect.buffer import Ring as SampleRing

    telemetry = Telemetry()
    registry = SeriesRegistry()
    ring = SampleRing("mqtt", 1000, "drop_oldest", telemetry.counter("buffer", "dropped", "policy"),
                      telemetry.counter("buffer", "logs_dropped", "policy"))
    sid = registry.intern(Series("t0", "", "gauge", attrs(device="dev0")))
    for i in range(30):
        ring.append(sid, T + i, float(i), token=i + 1)  # tokens: an MQTT cut owes acks, leaves at once

    def spool_write(signal: str, data: bytes, points: int) -> int:
        raise AssertionError("a healthy hold writes nothing")

    batcher = Batcher([ring], registry, RESOURCE, "boot", spool_write, telemetry, 10.0, 5000)
    wb, gather = rig()
    batcher.set_behind(wb)
    batcher.flush()
    [held] = wb._held.values()
    assert held.batch is not None and to_ipc(held.batch) == held.payload
    [item] = gather.next("metrics", lambda _: False, 1)
    assert item.batch.column(6).to_pylist() == [float(i) for i in range(30)]
