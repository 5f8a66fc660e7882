"""Drawn regions (docs/method.md §9): polygons in photo pixels that say what the subject is,
where more detail goes and which zones stay empty.

A region is ``{"role": "subject" | "detail" | "avoid", "polygon": [[x, y], ...]}`` in the
photo's own pixels (origin top-left, x right, y down), filled with the even-odd rule: a point is
inside when a ray from it crosses the outline an odd number of times, so one polygon that visits
an outer ring and then an inner ring (joined by a segment walked there and back) has a hole.
Several polygons of one role add up (union).

``canvas_masks`` turns them into coverage maps on the 224-px CLIP canvas, sampled exactly where
``image.make_canvas`` puts the photo's pixels: canvas pixel (i, j) inside the photo covers photo
x from ``(j - ox)·w/cw`` to ``(j + 1 - ox)·w/cw`` (likewise y), and its coverage is the fraction of
``SUPERSAMPLE``² sample points in that square that lie inside.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np
import torch

from .limits import MAX_REGIONS, MAX_VERTICES
from .region_spec import Region, RegionError, check_regions

if TYPE_CHECKING:
    from .image import Canvas

FAR_OUTSIDE = 1.0                 # a vertex may lie up to this many photo long sides beyond an edge
SUPERSAMPLE = 4                   # sample points per canvas pixel and axis
AVOID_RAMP = 8.0                  # canvas px: the avoid field grows by 1 every this far inside the zone
KEEP_TRIES = 4                    # halvings of a start stroke's step that leaves the allowed area


def inside_even_odd(polygon: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Even-odd test of the grid ``xs (W,) × ys (H,)`` against ``polygon (V, 2)``: bool ``(H, W)``.

    One horizontal ray per row: the x where each edge crosses the row (an edge counts when
    one end is at or below y and the other above, so a vertex on the row is counted once), and
    a sample is inside when an odd number of crossings lie left of it."""
    a = polygon
    b = np.roll(polygon, -1, axis=0)
    out = np.zeros((len(ys), len(xs)), dtype=bool)
    ylo, yhi = np.minimum(a[:, 1], b[:, 1]), np.maximum(a[:, 1], b[:, 1])
    for r in np.nonzero((ys >= ylo.min()) & (ys < yhi.max()))[0]:          # rows the polygon spans
        y = ys[r]
        hit = (ylo <= y) & (y < yhi)
        if not hit.any():
            continue
        ax, ay, bx, by = a[hit, 0], a[hit, 1], b[hit, 0], b[hit, 1]
        cross = np.sort(ax + (y - ay) * (bx - ax) / (by - ay))
        out[r] = np.searchsorted(cross, xs, side="right") % 2 == 1
    return out


def polygon_coverage(polygon: np.ndarray, canvas: "Canvas", size: int) -> np.ndarray:
    """Coverage ``(size, size)`` float32 in [0, 1] of an even-odd polygon in photo pixels on the
    canvas: per canvas pixel, the fraction of its ``SUPERSAMPLE``² sample points inside (zero
    outside the photo)."""
    valid = canvas.valid.numpy()
    rows, cols = np.nonzero(valid.any(1))[0], np.nonzero(valid.any(0))[0]
    y0, ch, x0, cw = int(rows[0]), len(rows), int(cols[0]), len(cols)
    k = SUPERSAMPLE
    sub = (np.arange(k) + 0.5) / k
    xs = ((np.arange(cw)[:, None] + sub).ravel()) * canvas.width / cw       # photo px of the sample points
    ys = ((np.arange(ch)[:, None] + sub).ravel()) * canvas.height / ch
    hits = inside_even_odd(polygon.astype(np.float64), xs, ys)               # (ch·k, cw·k)
    cov = hits.reshape(ch, k, cw, k).mean(axis=(1, 3))
    out = np.zeros((size, size), dtype=np.float32)
    out[y0:y0 + ch, x0:x0 + cw] = cov
    return out


@dataclass(frozen=True)
class RegionMasks:
    """Coverage of each role on the canvas, ``(C, C)`` float32 in [0, 1]; None when no polygon has
    that role."""

    subject: Optional[torch.Tensor] = None
    detail: Optional[torch.Tensor] = None
    avoid: Optional[torch.Tensor] = None

    def start_weights(self, valid: torch.Tensor, detail_weight: float) -> Optional[torch.Tensor]:
        """Weights ``(C, C)`` that multiply the start probabilities, or None without regions:
        0 outside the subject (less than half a pixel covered) and in any avoid zone (any part
        of the pixel), ``detail_weight`` in detail zones (more than half covered), 1 elsewhere.
        Raises ``RegionError`` when no pixel of the photo is left to start a stroke on."""
        if self.subject is None and self.detail is None and self.avoid is None:
            return None
        w = valid.float().clone()
        if self.subject is not None:
            w = w * (self.subject >= 0.5).float()
        if self.avoid is not None:
            w = w * (self.avoid <= 0).float()
        if self.detail is not None:
            w = w * torch.where(self.detail > 0.5, torch.tensor(float(detail_weight)), torch.tensor(1.0))
        if not bool((w > 0).any()):
            raise RegionError("the drawn regions leave no pixel of the photo for a stroke to start on: the avoid zones "
                              "cover the whole subject; draw a larger subject or smaller avoid zones")
        return w

    def avoid_field(self) -> Optional[torch.Tensor]:
        """The ink penalty per canvas pixel ``(C, C)``, or None without avoid or subject regions:
        the avoid zones and everything outside the subject ("sketch only this"), each pixel's
        share of them times ``1 + d / AVOID_RAMP``, ``d`` its distance (canvas px) to where ink is
        free. Ink deep in a zone costs more than ink near its edge, so the gradient pushes a stroke
        out of the zone instead of only shrinking it where it lies."""
        zones = []
        if self.avoid is not None:
            zones.append(self.avoid.numpy())
        if self.subject is not None:
            zones.append(1.0 - self.subject.numpy())
        if not zones:
            return None
        from scipy.ndimage import distance_transform_edt

        cov = np.maximum.reduce(zones) if len(zones) > 1 else zones[0]
        depth = distance_transform_edt(cov > 0).astype(np.float32)
        return torch.from_numpy((cov * (1.0 + depth / AVOID_RAMP)).astype(np.float32))

    def keep_inside(self, points: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Start strokes ``(..., 4, 2)`` (canvas px) whose P1..P3 stay where strokes may start
        (``weights > 0``, from :meth:`start_weights`): a control point that lands outside is
        pulled halfway back to the one before, up to ``KEEP_TRIES`` times, then onto it. With a
        convex subject the whole curve then lies inside (it stays in its control points' hull)."""
        allowed = weights > 0
        size = allowed.shape[-1]

        def ok(p: torch.Tensor) -> torch.Tensor:
            ij = p.floor().long().clamp(0, size - 1)
            return allowed[ij[..., 1], ij[..., 0]] & (p >= 0).all(-1) & (p < size).all(-1)

        out = points.clone()
        for k in range(1, 4):
            prev, cur = out[..., k - 1, :], out[..., k, :]
            for _ in range(KEEP_TRIES):
                bad = ~ok(cur)
                if not bool(bad.any()):
                    break
                cur = torch.where(bad.unsqueeze(-1), (prev + cur) / 2, cur)
            cur = torch.where((~ok(cur)).unsqueeze(-1), prev, cur)
            out[..., k, :] = cur
        return out


def canvas_masks(regions: Sequence[Region], canvas: "Canvas") -> RegionMasks:
    """Each role's coverage on ``canvas`` (see the module docstring). Raises ``RegionError`` for a
    polygon that is far outside the photo (a vertex more than ``FAR_OUTSIDE`` long sides beyond
    an edge: likely drawn in the wrong units) or covers no pixel of it."""
    check_regions(regions)
    size = canvas.pixels.shape[-1]
    w, h = canvas.width, canvas.height
    margin = FAR_OUTSIDE * max(w, h)
    union: dict[str, np.ndarray] = {}
    for i, r in enumerate(regions):
        poly = np.asarray(r.polygon, dtype=np.float64)
        lo, hi = poly.min(0), poly.max(0)
        if lo[0] < -margin or lo[1] < -margin or hi[0] > w + margin or hi[1] > h + margin:
            raise RegionError(f"regions[{i}] ({r.role}): it reaches ({_far_point(poly, w, h):s}), far outside the {w}×{h} "
                              "photo; polygons are in the photo's pixels, origin top-left")
        cov = polygon_coverage(poly, canvas, size)
        if not cov.any():
            raise RegionError(f"regions[{i}] ({r.role}): it covers no pixel of the {w}×{h} photo; draw it over the photo")
        union[r.role] = np.maximum(union[r.role], cov) if r.role in union else cov
    return RegionMasks(**{role: torch.from_numpy(m) for role, m in union.items()})


def _far_point(poly: np.ndarray, w: int, h: int) -> str:
    """The vertex farthest outside the photo, as text."""
    over = np.maximum(np.maximum(-poly, poly - np.array([w, h])), 0).max(1)
    x, y = poly[int(over.argmax())]
    return f"{x:g}, {y:g}"


def ink_penalty(ink: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Ink inside the avoid zones per sketch ``(G,)`` for rendered ink ``(G, C, C)`` in [0, 1]:
    ``Σ ink · field / C²``, the fraction of the canvas inked there (weighted deeper inside)."""
    size = ink.shape[-1]
    return (ink * field).flatten(1).sum(1) / (size * size)


__all__ = ["Region", "RegionError", "RegionMasks", "MAX_REGIONS", "MAX_VERTICES", "canvas_masks", "check_regions",
           "ink_penalty", "inside_even_odd"]
