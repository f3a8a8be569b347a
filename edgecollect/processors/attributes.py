"""`kind = "attributes"`: set, delete and rename point attributes. A changed attribute set is a
different series, so each input series id is mapped once to the id of its re-attributed series."""

from __future__ import annotations

import dataclasses

from edgecollect.model import Series, attrs
from edgecollect.processors.base import Env, Row, Stage
from edgecollect.processors.config import AttributesConfig


class Attributes(Stage):
    kind = "attributes"

    def __init__(self, cfg: AttributesConfig, name: str, env: Env) -> None:
        super().__init__(name, cfg.metrics, env)
        self._cfg = cfg
        self._map: dict[int, int] = {}  # input series id -> output id (-1: over the series cap)

    def reshape(self, series: Series) -> Series:
        values = dict(series.attributes)
        for old, new in self._cfg.rename.items():
            if old in values:
                values[new] = values.pop(old)
        for key in self._cfg.delete:
            values.pop(key, None)
        values.update(self._cfg.set)
        return dataclasses.replace(series, attributes=attrs(values))

    def _target(self, series_id: int) -> int:
        series = self.env.registry.series(series_id)
        if not self._matches(series.name):
            return series_id
        reshaped = self.reshape(series)
        return series_id if reshaped == series else self.env.derive(series_id, reshaped)

    def process(self, rows: list[Row], token: int) -> list[Row]:
        mapping = self._map
        out: list[Row] = []
        refused = 0
        for row in rows:
            target = mapping.get(row[0])
            if target is None:
                target = mapping[row[0]] = self._target(row[0])
            if target == row[0]:
                out.append(row)
            elif target < 0:
                refused += 1
            else:
                out.append((target, row[1], row[2], row[3]))
        if refused:
            self.dropped.inc("cardinality", refused)
        return out

    def state_size(self) -> int:
        return len(self._map)

    def describe(self) -> str:
        c = self._cfg
        parts = [f"set {c.set}"] if c.set else []
        if c.delete:
            parts.append(f"delete {list(c.delete)}")
        if c.rename:
            parts.append(f"rename {c.rename}")
        return "attributes: " + ", ".join(parts)
