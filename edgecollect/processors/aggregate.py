"""`kind = "aggregate"`: one point per series per wall-clock window.

Windows are aligned to multiples of `window` since the Unix epoch (a 60 s window is a calendar
minute). A gauge becomes one series per function, `<name>.min/.max/.mean/.last/.count`, each point
stamped with the window end and carrying the window start as its start time (interned with a
negative start time, which batch.py reads as "this long before the point"). Sums are never averaged:
a cumulative or up-down sum keeps its own series and emits its last value; a delta sum emits its
sum over the window.

A window is emitted when a point of a later window arrives for its series, on a timer tick once
the window has ended (plus a 2 s grace for points in flight), and at shutdown (open windows are
flushed). A point older than its series' open window is late: counted (`reason=late`), not added.

Acks (`ack = "after_window"`, the default): a QoS>=1 message whose points went into an open window
is held back (`held_token`) until that window is emitted into the ring; the ring then acknowledges
it only once the batch holding the aggregate is durable, so nothing acked is lost on kill -9. The
cost: acks wait up to a window (a broker's in-flight window throttles a QoS 1 stream meanwhile).
`ack = "on_receipt"` acks at once instead and accepts losing the open window to a kill -9.
"""

from __future__ import annotations

import dataclasses
import math

from edgecollect.processors.base import Env, Row, Stage
from edgecollect.processors.config import AggregateConfig

GRACE_NS = 2_000_000_000


class _Window:
    __slots__ = ("count", "done_ns", "flags", "high", "last", "low", "start_ns", "targets", "token", "total")

    def __init__(self, targets: tuple[int, ...]) -> None:
        self.targets = targets  # output ids, one per function (gauges) or (same id,) for sums
        self.start_ns = -1  # -1: no open window
        self.done_ns = -1  # end of the last window emitted: points before it are late
        self.count = 0
        self.total = 0.0
        self.low: float = math.inf
        self.high: float = -math.inf
        self.last: int | float = 0
        self.flags = 0
        self.token = 0


class Aggregate(Stage):
    kind = "aggregate"

    def __init__(self, cfg: AggregateConfig, name: str, env: Env) -> None:
        super().__init__(name, cfg.metrics, env)
        self._cfg = cfg
        self._window_ns = int(cfg.window * 1e9)
        self._hold = cfg.ack == "after_window"
        self._states: dict[int, _Window | None] = {}  # None: not selected (or over the series cap)
        self._held: dict[int, list[int]] = {}  # window start -> [open windows with a token, min token]

    # -- series ---------------------------------------------------------------------------------

    def _state(self, series_id: int) -> _Window | None:
        if not self.selected(series_id):
            return None
        series = self.env.registry.series(series_id)
        if series.kind != "gauge":
            return _Window((series_id,))
        targets = []
        for function in self._cfg.functions:
            derived = dataclasses.replace(
                series, name=f"{series.name}.{function}", unit="1" if function == "count" else series.unit,
            )
            target = self.env.derive(series_id, derived, start_time_ns=-self._window_ns)
            if target < 0:
                self.dropped.inc("cardinality")
                return None
            targets.append(target)
        return _Window(tuple(targets))

    # -- points ---------------------------------------------------------------------------------

    def process(self, rows: list[Row], token: int) -> list[Row]:
        states = self._states
        width = self._window_ns
        keep_raw = self._cfg.keep_raw
        out: list[Row] = []
        late = 0
        for row in rows:
            sid, time_ns, value, flags = row
            if sid in states:
                st = states[sid]
            else:
                st = states[sid] = self._state(sid)
            if st is None:
                out.append(row)
                continue
            if keep_raw:
                out.append(row)
            start = time_ns - time_ns % width
            if start != st.start_ns:
                if start < st.start_ns or start < st.done_ns:
                    late += 1
                    continue
                if st.start_ns >= 0:
                    self._emit(sid, st, out)
                st.start_ns = start
                if token and self._hold:
                    st.token = token
                    held = self._held.setdefault(start, [0, token])
                    held[0] += 1
                    held[1] = min(held[1], token)
            elif token and self._hold and not st.token:
                st.token = token
                held = self._held.setdefault(start, [0, token])
                held[0] += 1
                held[1] = min(held[1], token)
            st.count += 1
            st.total += value
            if value < st.low:
                st.low = value
            if value > st.high:
                st.high = value
            st.last = value
            st.flags |= flags
        if late:
            self.dropped.inc("late", late)
        return out

    def _emit(self, sid: int, st: _Window, out: list[Row], final: bool = False) -> None:
        end = st.start_ns + self._window_ns
        if len(st.targets) == 1 and st.targets[0] == sid:
            kind = self.env.registry.series(sid).kind
            value: int | float = st.total if kind == "delta" else st.last
            if kind == "delta" and isinstance(st.last, int) and st.total.is_integer():
                value = int(st.total)
            out.append((sid, end, value, st.flags))
        else:
            for function, target in zip(self._cfg.functions, st.targets, strict=True):
                if function == "min":
                    out.append((target, end, st.low, st.flags))
                elif function == "max":
                    out.append((target, end, st.high, st.flags))
                elif function == "mean":
                    out.append((target, end, st.total / st.count, st.flags))
                elif function == "last":
                    out.append((target, end, st.last, st.flags))
                else:
                    out.append((target, end, st.count, st.flags))
        if st.token:
            held = self._held[st.start_ns]
            held[0] -= 1
            if held[0] == 0:
                del self._held[st.start_ns]
        if not final:  # at shutdown a straggler may still come: it makes a window of its own
            st.done_ns = end
        st.start_ns, st.count, st.total, st.low, st.high, st.flags, st.token = -1, 0, 0.0, math.inf, -math.inf, 0, 0

    def flush(self, now_ns: int, final: bool) -> list[Row]:
        out: list[Row] = []
        due = now_ns - self._window_ns - GRACE_NS
        for sid, st in self._states.items():
            if st is not None and st.start_ns >= 0 and (final or st.start_ns <= due):
                self._emit(sid, st, out, final)
        return out

    def held_token(self) -> int:
        return min((held[1] for held in self._held.values()), default=0)

    def state_size(self) -> int:
        return len(self._states)

    def describe(self) -> str:
        c = self._cfg
        raw = ", raw points kept" if c.keep_raw else ""
        return (
            f"aggregate: {c.window:g}s windows, gauges -> {', '.join(f'<name>.{f}' for f in c.functions)}; "
            f"cumulative sums keep last, delta sums sum{raw}; acks {c.ack.replace('_', ' ')}"
        )
