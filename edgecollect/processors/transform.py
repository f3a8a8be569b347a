"""`kind = "transform"`: rename metrics, change their unit, convert values linearly
(value × scale + offset). Like attributes, a renamed series is interned once per input id."""

from __future__ import annotations

import dataclasses

from edgecollect.processors.base import Env, Row, Stage
from edgecollect.processors.config import TransformConfig


class Transform(Stage):
    kind = "transform"

    def __init__(self, cfg: TransformConfig, name: str, env: Env) -> None:
        super().__init__(name, cfg.metrics, env)
        self._cfg = cfg
        self._linear = cfg.scale != 1.0 or cfg.offset != 0.0
        self._map: dict[int, int] = {}  # input id -> output id; -2: not selected; -1: over the cap

    def _target(self, series_id: int) -> int:
        series = self.env.registry.series(series_id)
        if not self._matches(series.name):
            return -2
        renamed = dataclasses.replace(
            series, name=self._cfg.rename.get(series.name, series.name), unit=self._cfg.unit or series.unit,
        )
        return series_id if renamed == series else self.env.derive(series_id, renamed)

    def process(self, rows: list[Row], token: int) -> list[Row]:
        mapping = self._map
        scale, offset, linear = self._cfg.scale, self._cfg.offset, self._linear
        out: list[Row] = []
        refused = 0
        for row in rows:
            target = mapping.get(row[0])
            if target is None:
                target = mapping[row[0]] = self._target(row[0])
            if target == -2:
                out.append(row)
            elif target == -1:
                refused += 1
            else:
                out.append((target, row[1], row[2] * scale + offset if linear else row[2], row[3]))
        if refused:
            self.dropped.inc("cardinality", refused)
        return out

    def state_size(self) -> int:
        return len(self._map)

    def describe(self) -> str:
        c = self._cfg
        parts = [f"rename {c.rename}"] if c.rename else []
        if self._linear:
            parts.append(f"value × {c.scale:g} + {c.offset:g}")
        if c.unit:
            parts.append(f"unit {c.unit}")
        return "transform: " + (", ".join(parts) or "nothing")
