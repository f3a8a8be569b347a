"""`kind = "deadband"`: report by exception.

A point is emitted when it differs from the last emitted value of its series by at least
`threshold` (or `percent` of it), or when `max_silence` has passed since the last emission; the
others are held back. Only the latest held point is kept per series: it is emitted when the next
emission is forced by `max_silence` on a timer tick, before a counter reset, and at shutdown, and
counted as dropped (`reason=deadband`) when a newer point replaces it.

Cumulative sums: a reset (a value lower than the previous one) is always emitted, preceded by the
held point if there was one, so no increase is lost from a rate. Late points (older than the last
one seen) pass through unchanged and do not move the reference.

Acks: a held-back point's message is acknowledged like any other once the ring's drain covers it —
deadband's decision to drop is final, and what a kill -9 can lose (the held point) differs from a
durable emitted value by less than the band.
"""

from __future__ import annotations

from edgecollect.processors.base import Env, Row, Stage
from edgecollect.processors.config import DeadbandConfig


class _State:
    __slots__ = ("counter", "emitted_ns", "emitted_value", "held", "seen_ns", "seen_value")

    def __init__(self, row: Row, counter: bool) -> None:
        self.emitted_value: float = row[2]
        self.emitted_ns = row[1]
        self.seen_value: float = row[2]
        self.seen_ns = row[1]
        self.held: Row | None = None
        self.counter = counter


class Deadband(Stage):
    kind = "deadband"

    def __init__(self, cfg: DeadbandConfig, name: str, env: Env) -> None:
        super().__init__(name, cfg.metrics, env)
        self._cfg = cfg
        self._threshold = cfg.threshold
        self._fraction = cfg.percent / 100.0 if cfg.percent is not None else None
        self._silence_ns = int(cfg.max_silence * 1e9)
        self._states: dict[int, _State | None] = {}  # None: series not selected

    def _changed(self, value: float, reference: float) -> bool:
        delta = abs(value - reference)
        if self._fraction is not None:
            return delta > 0 and delta >= abs(reference) * self._fraction
        return delta >= self._threshold if self._threshold else delta != 0

    def process(self, rows: list[Row], token: int) -> list[Row]:
        states = self._states
        silence = self._silence_ns
        out: list[Row] = []
        superseded = 0
        for row in rows:
            sid = row[0]
            if sid in states:
                st = states[sid]
            else:
                st = None
                if self.selected(sid):
                    st = _State(row, self.env.registry.series(sid).kind == "cumulative")
                    states[sid] = st
                    out.append(row)
                    continue
                states[sid] = None
            if st is None:
                out.append(row)
                continue
            time_ns, value = row[1], row[2]
            if time_ns < st.seen_ns:
                out.append(row)  # late: passes unchanged, the reference stays
                continue
            reset = st.counter and value < st.seen_value
            st.seen_value, st.seen_ns = value, time_ns
            if reset or (silence and time_ns - st.emitted_ns >= silence) or self._changed(value, st.emitted_value):
                if st.held is not None:
                    if reset:
                        out.append(st.held)
                    else:
                        superseded += 1
                    st.held = None
                out.append(row)
                st.emitted_value, st.emitted_ns = value, time_ns
            else:
                if st.held is not None:
                    superseded += 1
                st.held = row
        if superseded:
            self.dropped.inc("deadband", superseded)
        return out

    def flush(self, now_ns: int, final: bool) -> list[Row]:
        if not final and not self._silence_ns:
            return []
        out: list[Row] = []
        for st in self._states.values():
            if st is None or st.held is None:
                continue
            if final or now_ns - st.emitted_ns >= self._silence_ns:
                out.append(st.held)
                st.emitted_value, st.emitted_ns = st.held[2], st.held[1]
                st.held = None
        out.sort(key=lambda r: r[1])
        return out

    def state_size(self) -> int:
        return len(self._states)

    def describe(self) -> str:
        band = f"{self._cfg.percent:g} %" if self._fraction is not None else f"{self._threshold:g}"
        silence = f", at least every {self._cfg.max_silence:g}s" if self._silence_ns else ""
        return f"deadband: emit on a change >= {band}{silence}; counter resets always"
