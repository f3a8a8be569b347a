"""Acceptance: 100,000 SLF/1 frames with 5 % injected faults, fed in random chunk sizes.

Each fault class has one outcome the spec predicts (firmware-bridges/slf1/SLF1.md step 3):

    flip_body   one bit flipped between `$` and `*`        -> crc (CRC-16 finds every 1-bit error)
    burst       two adjacent bytes replaced (<= 16 bits)   -> crc (CRC-16 finds every burst <= 16)
    flip_start  a bit of the `$` flipped                   -> no_start
    flip_star   a bit of the `*` flipped (not into \\n)     -> no_crc
    truncate    the frame cut short, line ended            -> no_crc
    noise       a line of random bytes between frames      -> no_start
    overflow    256..400 bytes without `\\n` or `$`         -> overflow
    cut         the frame cut short, next frame glued on   -> nothing rejected, one frame lost
    duplicate   the frame sent twice                       -> ok, then dropped as duplicate

Every frame carries its seq as a value and a temperature derived from it, so any corrupted frame
that slipped through would show up as a wrong (seq, temp) pair.
"""

from __future__ import annotations

import os
import random
import re
import threading

import pytest

from edgecollect.sources.serial import SerialConfig, SerialSource
from edgecollect.sources.serial.config import DEFAULT_LOG_PATTERNS
from edgecollect.sources.serial.framing import slf1
from edgecollect.sources.serial.port import LineSplitter
from tests.sources.serial.serial_helpers import Collected, counters, frames, make_ctx, running

CLASSES = (
    "flip_body",
    "burst",
    "flip_start",
    "flip_star",
    "truncate",
    "noise",
    "overflow",
    "cut",
    "duplicate",
)
EXPECTED_OUTCOME = {
    "flip_body": "crc",
    "burst": "crc",
    "flip_start": "no_start",
    "flip_star": "no_crc",
    "truncate": "no_crc",
    "noise": "no_start",
    "overflow": "overflow",
}
LOST = {"flip_body", "burst", "flip_start", "flip_star", "truncate", "cut"}
_LOG_PATTERNS = [re.compile(p.encode()) for p in DEFAULT_LOG_PATTERNS]
_JUNK = [c for c in range(256) if c not in (0x0A, 0x24)]
_NOT_NL = [c for c in range(256) if c != 0x0A]


def temp_of(seq: int) -> str:
    return f"{(seq % 900) / 10 - 20:.1f}"


def _random_junk(rng: random.Random, n: int) -> bytes:
    while True:
        junk = bytes(rng.choices(_JUNK, k=n))
        if junk.strip() and not any(p.search(junk) for p in _LOG_PATTERNS):
            return junk


def build_stream(n: int, fault_rate: float, seed: int) -> tuple[bytes, dict[str, int], set[int]]:
    """The byte stream, the number of faults per class, and the seqs that must be accepted."""
    rng = random.Random(seed)
    out: list[bytes] = []
    injected = dict.fromkeys(CLASSES, 0)
    clean: set[int] = set()
    force_clean = True  # first frame clean (nothing to measure a gap against), and after a `cut`
    for seq in range(n):
        frame = slf1.encode("D", "stress-01", seq, seq * 100, [("seq", str(seq)), ("temp.ds0", temp_of(seq))])
        fault = None if force_clean or seq == n - 1 or rng.random() >= fault_rate else rng.choice(CLASSES)
        force_clean = False
        if fault is None:
            out.append(frame)
            clean.add(seq)
            continue
        injected[fault] += 1
        star = frame.rindex(b"*")
        if fault == "flip_body":
            pos = rng.randrange(1, star)
            bits = [1 << i for i in range(8) if frame[pos] ^ (1 << i) != 0x0A]
            out.append(frame[:pos] + bytes([frame[pos] ^ rng.choice(bits)]) + frame[pos + 1 :])
        elif fault == "burst":
            pos = rng.randrange(1, star - 1)
            out.append(frame[:pos] + _burst(rng, frame[pos : pos + 2]) + frame[pos + 2 :])
        elif fault == "flip_start":
            out.append(bytes([0x24 ^ (1 << rng.randrange(8))]) + frame[1:])
        elif fault == "flip_star":
            bit = rng.choice([b for b in range(8) if b != 5])  # 0x2A ^ 0x20 is \n, a different fault
            out.append(frame[:star] + bytes([0x2A ^ (1 << bit)]) + frame[star + 1 :])
        elif fault == "truncate":
            out.append(frame[: rng.randrange(1, len(frame) - 3)] + b"\r\n")
        elif fault == "noise":
            out.append(_random_junk(rng, rng.randint(1, 60)) + b"\n")
            out.append(frame)
            clean.add(seq)
        elif fault == "overflow":
            out.append(_random_junk(rng, rng.randint(256, 400)) + b"\r\n")
            out.append(frame)
            clean.add(seq)
        elif fault == "cut":
            out.append(frame[: rng.randrange(1, len(frame) - 3)])
            force_clean = True
        else:  # duplicate
            out.append(frame + frame)
            clean.add(seq)
    return b"".join(out), injected, clean


def _burst(rng: random.Random, old: bytes) -> bytes:
    while True:
        new = bytes(rng.choices(_NOT_NL, k=len(old)))
        if new != old:
            return new


def expected_counters(injected: dict[str, int], n_clean: int) -> tuple[dict[str, int], int]:
    outcomes = {"ok": n_clean + injected["duplicate"]}
    for fault, outcome in EXPECTED_OUTCOME.items():
        if injected[fault]:
            outcomes[outcome] = outcomes.get(outcome, 0) + injected[fault]
    return outcomes, sum(injected[f] for f in LOST)


def check_accepted(collected: Collected, clean: set[int]) -> None:
    """Every accepted frame is one we sent intact, exactly once, in order, with its own values."""
    seqs = [s for s in collected.samples if s.metric == "seq"]
    temps = [s for s in collected.samples if s.metric == "temp"]
    assert [int(s.value) for s in seqs] == sorted(clean)
    assert len(temps) == len(seqs)
    for s, t in zip(seqs, temps, strict=True):
        assert f"{t.value:.1f}" == temp_of(int(s.value)), (s, t)
        assert t.attributes == {"device.id": "stress-01", "sensor.id": "ds0"}


def test_100k_frames_with_5_percent_faults_in_random_chunks() -> None:
    stream, injected, clean = build_stream(100_000, 0.05, seed=20261126)
    assert all(injected[c] > 100 for c in CLASSES), injected
    ctx = make_ctx()
    source = SerialSource(SerialConfig(port="loop://"), ctx)
    splitter = LineSplitter(255, ord("$"))
    rng = random.Random(7)
    pos = 0
    collected = Collected(ctx)
    while pos < len(stream):
        step = rng.randint(1, 700)
        source.feed(splitter, stream[pos : pos + step])
        pos += step
        if len(ctx.ring) > 500_000:
            collected.pull()
    collected.pull()
    outcomes, lost = expected_counters(injected, len(clean))
    got = counters(ctx)
    assert frames(ctx) == outcomes
    assert got.get("lost_frames", {}).get("", 0) == lost
    assert got.get("duplicates", {}).get("", 0) == injected["duplicate"]
    assert "reboots" not in got or not got["reboots"]
    check_accepted(collected, clean)


@pytest.mark.integration
def test_faulty_stream_through_a_real_pty_gives_the_same_counts() -> None:
    stream, injected, clean = build_stream(10_000, 0.05, seed=99)
    master, slave = os.openpty()
    ctx = make_ctx()
    collected = Collected(ctx)
    cfg = SerialConfig(port=os.ttyname(slave))  # opened by name, like a device node
    try:
        with running(cfg, ctx):
            collected.wait_for(lambda c: counters(ctx).get("port_opens", {}).get("", 0) >= 1, what="open")
            rng = random.Random(3)

            def write() -> None:
                pos = 0
                while pos < len(stream):
                    step = rng.randint(1, 300)
                    os.write(master, stream[pos : pos + step])
                    pos += step

            writer = threading.Thread(target=write, daemon=True)
            writer.start()
            last = max(clean)
            collected.wait_for(
                lambda c: any(s.metric == "seq" and s.value == last for s in c.samples),
                timeout=60,
                what="the last frame",
            )
            writer.join(10)
    finally:
        os.close(master)
        os.close(slave)
    outcomes, lost = expected_counters(injected, len(clean))
    assert frames(ctx) == outcomes
    assert counters(ctx)["lost_frames"][""] == lost
    check_accepted(collected, clean)
