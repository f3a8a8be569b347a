"""`kind = "filter"`: drop points by metric name (include first, then exclude), optionally only
those whose attributes match `where`. The decision depends only on the series, so it is made once
per series id; dropped points are counted as `edgecollect.processor.dropped{reason}`."""

from __future__ import annotations

from fnmatch import fnmatchcase

from edgecollect.processors.base import Env, Row, Stage, glob_matcher
from edgecollect.processors.config import FilterConfig


class Filter(Stage):
    kind = "filter"

    def __init__(self, cfg: FilterConfig, name: str, env: Env) -> None:
        super().__init__(name, cfg.metrics, env)
        self._cfg = cfg
        self._include = glob_matcher(cfg.include) if cfg.include else None
        self._exclude = glob_matcher(cfg.exclude)
        self._verdicts: dict[int, str] = {}  # series id -> "" (keep) or the drop reason

    def _verdict(self, series_id: int) -> str:
        series = self.env.registry.series(series_id)
        if not self._matches(series.name):
            return ""
        attributes = {k: str(v) for k, v in series.attributes}
        for key, glob in self._cfg.where.items():
            if key not in attributes or not fnmatchcase(attributes[key], glob):
                return ""
        if self._include is not None and not self._include(series.name):
            return "not_included"
        if self._exclude(series.name):
            return "excluded"
        return ""

    def process(self, rows: list[Row], token: int) -> list[Row]:
        verdicts = self._verdicts
        out: list[Row] = []
        dropped: dict[str, int] = {}
        for row in rows:
            verdict = verdicts.get(row[0])
            if verdict is None:
                verdict = verdicts[row[0]] = self._verdict(row[0])
            if verdict:
                dropped[verdict] = dropped.get(verdict, 0) + 1
            else:
                out.append(row)
        for reason, n in dropped.items():
            self.dropped.inc(reason, n)
        return out

    def state_size(self) -> int:
        return len(self._verdicts)

    def describe(self) -> str:
        parts = [f"include {list(self._cfg.include)}"] if self._cfg.include else []
        if self._cfg.exclude:
            parts.append(f"exclude {list(self._cfg.exclude)}")
        if self._cfg.where:
            parts.append(f"where {self._cfg.where}")
        return "filter: " + ", ".join(parts)
