"""What the spool knows of one stored batch without reading it: the entry of its in-memory index.

Its own module so that the downsampler (downsample.py), which the spool imports when
`when_full = "downsample"`, can name the spool's entries without importing spool.py back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    id: int  # the sequence number
    signal: str  # "metrics" | "logs"
    points: int
    created_ns: int
    size: int  # bytes on disk, framing included
    path: Path
