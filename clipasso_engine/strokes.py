"""Strokes: the sketch's unit, as a plain record and as the optimizer's batched tensors.

Coordinates are image pixels, origin top-left, x to the right, y down. A stroke is one open
cubic Bézier segment (4 control points) drawn with round caps. ``width`` is the full visible
stroke width in the same pixels (not a half-width).

Batched form used by the rasterizer and the optimizer:
    points (S, N, 4, 2)  seeds × strokes × control points × xy, float32, image pixels
    widths (S, N)        full stroke widths, image pixels
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Iterable, Sequence

import numpy as np
import torch
from pydantic import Field

Point = tuple[float, float]

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass(frozen=True)
class Stroke:
    """One cubic Bézier stroke in image pixels: 4 control points, full width, colour, opacity.

    It is also the stroke of the HTTP API (request and result bodies validate into it: the
    ``Field`` descriptions below are its documentation in /openapi.json)."""

    points: Annotated[tuple[Point, Point, Point, Point], Field(description="4 control points [x, y], image pixels")]
    width: Annotated[float, Field(description="full stroke width, image pixels")] = 3.0
    color: Annotated[str, Field(description="'#rrggbb'")] = "#000000"
    opacity: Annotated[float, Field(description="0 to 1")] = 1.0

    def __post_init__(self) -> None:
        pts = tuple((float(x), float(y)) for x, y in self.points)
        if len(pts) != 4:
            raise ValueError(f"a stroke needs exactly 4 control points, got {len(pts)}")
        if not all(map(_finite, (c for p in pts for c in p))):
            raise ValueError(f"stroke control points must be finite numbers, got {pts}")
        if not (_finite(self.width) and self.width >= 0):
            raise ValueError(f"stroke width must be a finite number >= 0, got {self.width}")
        if not _HEX_COLOR.match(self.color):
            raise ValueError(f"stroke color must look like '#rrggbb', got {self.color!r}")
        if not (0.0 <= float(self.opacity) <= 1.0):
            raise ValueError(f"stroke opacity must lie in [0, 1], got {self.opacity}")
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "width", float(self.width))
        object.__setattr__(self, "color", self.color.lower())
        object.__setattr__(self, "opacity", float(self.opacity))

    def to_json(self) -> dict[str, Any]:
        """The strokes-JSON form: ``{"points": [[x, y] × 4], "width", "color", "opacity"}``."""
        return {
            "points": [list(p) for p in self.points],
            "width": self.width,
            "color": self.color,
            "opacity": self.opacity,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Stroke":
        """Inverse of :meth:`to_json`; raises ``ValueError`` naming what is wrong."""
        if not isinstance(data, dict) or "points" not in data:
            raise ValueError(f"a stroke must be an object with 'points', got {data!r}")
        return cls(
            points=tuple(tuple(p) for p in data["points"]),  # type: ignore[arg-type]
            width=data.get("width", 3.0),
            color=data.get("color", "#000000"),
            opacity=data.get("opacity", 1.0),
        )


def _finite(v: Any) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and abs(f) != float("inf")


def _shortest(t: torch.Tensor) -> np.ndarray:
    """Tensor values as float64 numbers with the fewest decimals that read back to the same
    value in the tensor's own precision (float32 0.1 becomes 0.1, not 0.10000000149011612), so
    SVG and JSON carry short, exact numbers."""
    a = t.detach().cpu().numpy()
    if a.dtype != np.float32:
        return a.astype(np.float64)
    return np.array([float(str(v)) for v in a.reshape(-1)], dtype=np.float64).reshape(a.shape)


def strokes_to_tensors(
    strokes: Sequence[Stroke], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pack strokes into ``points (N, 4, 2)`` and ``widths (N,)`` float32 tensors (image pixels)."""
    points = torch.tensor([s.points for s in strokes], dtype=torch.float32, device=device)
    widths = torch.tensor([s.width for s in strokes], dtype=torch.float32, device=device)
    return points.reshape(len(strokes), 4, 2), widths


def tensors_to_strokes(
    points: torch.Tensor, widths: torch.Tensor | Iterable[float] | float
) -> list[Stroke]:
    """Unpack ``points (N, 4, 2)`` and ``widths (N,)`` (or one width for all) into strokes."""
    pts = _shortest(points).reshape(-1, 4, 2).tolist()
    if isinstance(widths, torch.Tensor):
        ws = _shortest(widths).reshape(-1).tolist()
    elif isinstance(widths, (int, float)):
        ws = [float(widths)] * len(pts)
    else:
        ws = [float(w) for w in widths]
    if len(ws) != len(pts):
        raise ValueError(f"{len(pts)} strokes but {len(ws)} widths")
    return [Stroke(points=tuple(map(tuple, p)), width=w) for p, w in zip(pts, ws)]  # type: ignore[arg-type]



def random_strokes(
    seeds: int,
    strokes: int,
    height: int,
    width: int,
    generator: torch.Generator,
    span: tuple[float, float] = (0.1, 0.5),
) -> torch.Tensor:
    """Random strokes of realistic size for tests and benchmarks: ``(S, N, 4, 2)`` pixels.

    P0 is uniform over the canvas; P1..P3 follow a random walk whose steps are scaled so a
    stroke spans ``span`` (fraction of the short side) of the canvas.
    """
    p0 = torch.rand(seeds, strokes, 1, 2, generator=generator) * torch.tensor([float(width), float(height)])
    lo, hi = span
    size = (lo + (hi - lo) * torch.rand(seeds, strokes, 1, 1, generator=generator)) * min(height, width)
    steps = (torch.rand(seeds, strokes, 3, 2, generator=generator) - 0.5) * size
    return torch.cat([p0, p0 + steps.cumsum(2)], dim=2)


__all__ = ["Stroke", "Point", "strokes_to_tensors", "tensors_to_strokes", "random_strokes"]
