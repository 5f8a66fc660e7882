"""What a drawn region is, and the checks that need no photo (docs/method.md §9).

Apart from ``regions.py`` (which turns regions into masks on the canvas with numpy and torch)
so that ``SketchSettings`` can declare and check its ``regions`` field without importing torch:
the CLI builds its flags from SketchSettings, and ``clipasso --help`` must stay quick.
"""

from __future__ import annotations

import math
from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from .limits import MAX_REGIONS, MAX_VERTICES, RegionRole


class RegionError(ValueError):
    """A drawn region that cannot be used; the message names the region and what to do."""


class Region(BaseModel):
    """One drawn polygon and what it means (photo pixels, even-odd fill)."""

    model_config = ConfigDict(extra="forbid")

    role: RegionRole = Field(..., description="subject (sketch only this), detail (more strokes here) or avoid (keep empty)")
    polygon: list[tuple[float, float]] = Field(..., description="outline [[x, y], ...] in photo pixels, origin top-left")


def check_regions(regions: Sequence[Region]) -> None:
    """Raise ``RegionError`` for the first bad polygon: too many polygons, fewer than 3 points,
    more than ``MAX_VERTICES``, a coordinate that is NaN or infinite. (Where the polygon lies is
    checked against the photo by ``canvas_masks``.)"""
    if len(regions) > MAX_REGIONS:
        raise RegionError(f"regions: {len(regions)} polygons; at most {MAX_REGIONS} are accepted: merge or simplify shapes")
    for i, r in enumerate(regions):
        n = len(r.polygon)
        if n < 3:
            raise RegionError(f"regions[{i}] ({r.role}): a polygon needs at least 3 points, got {n}")
        if n > MAX_VERTICES:
            raise RegionError(f"regions[{i}] ({r.role}): {n} points; a polygon may have at most {MAX_VERTICES}: simplify the shape")
        if not all(math.isfinite(v) for p in r.polygon for v in p):
            raise RegionError(f"regions[{i}] ({r.role}): a coordinate is NaN or infinite; every point must be a finite [x, y]")
