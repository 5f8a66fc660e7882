"""Differentiable stroke rasterizer in pure PyTorch (the default backend).

What it draws: each stroke is an open cubic Bézier with round caps, flattened into a polyline of
short chords. A pixel's coverage by a stroke is the box-filtered coverage of a band of width
``w`` at distance ``d`` from the pixel centre to the polyline (round caps and joins come for free
from the point-to-segment distance):

    coverage = clamp(min(d + w/2, 1/2) - max(d - w/2, -1/2), 0, 1)

which for ``w >= 1`` is ``clamp(w/2 + 1/2 - d, 0, 1)``, the analytic 1-px anti-aliasing band of
docs/method.md, and for hair-lines ``w < 1`` keeps the ink area right. Strokes composite as black ink:
``ink = 1 - Π_i (1 - coverage_i)``. Within one stroke coverage is the maximum over its chords, so
chords never darken their own joints (what cairo and Inkscape draw for one path).

Why it is fast: no pixel is ever compared with a stroke it cannot touch. The canvas is cut into
``tile × tile`` tiles; every chord lists the tiles its bounding box (grown by the stroke's reach
``w/2 + 1``) overlaps, and only those (chord, tile) pairs are evaluated. Work therefore grows
with the pixels the strokes touch, not with strokes × canvas. The pair lists are integer
bookkeeping without gradients; the geometry stays one differentiable chain of tensor ops.

Coordinates: image pixels, origin top-left; pixel (i, j) has its centre at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math

import torch

# Chord length (pixels) the flattening aims for. A chord of length L on a curve of radius R
# strays L²/(8R) from it: 4 px chords on a 10 px radius bend stay within 0.2 px.
CHORD_PX = 4.0
MIN_CHORDS, MAX_CHORDS = 8, 96
DEFAULT_TILE = 4
# Coverage is clamped below 1 before the log-space composite; ink then tops out at 1 - 1e-6.
_SOLID = 1.0 - 1e-6


def render(
    points: torch.Tensor,
    widths: torch.Tensor,
    height: int,
    width: int,
    *,
    tile: int = DEFAULT_TILE,
    chords: int | None = None,
) -> torch.Tensor:
    """Rasterize strokes to ink coverage.

    Args:
        points: ``(S, N, 4, 2)`` control points, image pixels (seeds × strokes × points × xy).
        widths: ``(S, N)`` full stroke widths in pixels.
        height, width: canvas size in pixels.
        tile: tile edge in pixels used for culling (a speed knob; the picture does not change).
        chords: chords per stroke; default adapts to each stroke's length (~4 px chords).

    Returns:
        ``(S, height, width)`` ink coverage in [0, 1] (0 = paper, 1 = solid ink), differentiable
        w.r.t. ``points`` and ``widths``, on the device and dtype of ``points``.
    """
    if points.dim() != 4 or points.shape[-2:] != (4, 2):
        raise ValueError(f"points must have shape (S, N, 4, 2), got {tuple(points.shape)}")
    S, N = points.shape[:2]
    if widths.shape != (S, N):
        raise ValueError(f"widths must have shape {(S, N)}, got {tuple(widths.shape)}")
    if height < 1 or width < 1:
        raise ValueError(f"canvas must be at least 1×1 pixels, got {height}×{width}")
    device, dtype = points.device, points.dtype
    widths = widths.to(dtype)
    ty_n, tx_n = math.ceil(height / tile), math.ceil(width / tile)
    n_tiles = ty_n * tx_n
    if N == 0:
        return _blank(points, widths, height, width)

    # --- flatten every Bézier into a polyline of its own number of chords ---------------------
    a, b, owner = flatten(points.reshape(S * N, 4, 2), chords)          # (M, 2), (M, 2), (M,)
    half = (widths * 0.5).reshape(-1)                                  # (S·N,)

    # --- culling: which (chord, tile) pairs can have coverage > 0 ------------------------------
    with torch.no_grad():
        chord, tile_id = chord_tile_pairs(a, b, half[owner], tile, tx_n, ty_n, height, width)
    if chord.numel() == 0:
        return _blank(points, widths, height, width)
    stroke = owner[chord]                                              # (P,) global stroke index

    # --- coverage of each pair's tile pixels by its chord ------------------------------------
    offs = _tile_pixel_centres(tile, device, dtype)                    # (T², 2)
    origin = torch.stack([tile_id % tx_n, tile_id // tx_n], dim=1).to(dtype) * tile  # (P, 2)
    pa, pb = a[chord], b[chord]                                        # (P, 2)
    ab = pb - pa                                                       # (P, 2)
    ap = (origin - pa).unsqueeze(1) + offs                             # (P, T², 2)
    t = ((ap * ab.unsqueeze(1)).sum(-1) / (ab * ab).sum(-1, keepdim=True).clamp_min(1e-12)).clamp(0, 1)
    diff = ap - t.unsqueeze(-1) * ab.unsqueeze(1)                      # (P, T², 2)
    d = (diff * diff).sum(-1).clamp_min(1e-12).sqrt()                  # (P, T²) distance, px
    hw = half[stroke].unsqueeze(1)                                     # (P, 1)
    cov = (torch.minimum(d + hw, d.new_tensor(0.5)) - torch.maximum(d - hw, d.new_tensor(-0.5))).clamp(0, 1)

    # --- max over a stroke's chords per pixel, then ink composite over strokes ---------------
    key, inverse = torch.unique(stroke * n_tiles + tile_id, return_inverse=True)  # U (stroke, tile) keys
    per_stroke = cov.new_zeros(key.numel(), tile * tile).scatter_reduce(
        0, inverse.unsqueeze(1).expand_as(cov), cov, reduce="amax", include_self=True
    )                                                                  # (U, T²)
    seed_tile = (key // n_tiles) // N * n_tiles + key % n_tiles        # (U,) seed·n_tiles + tile
    log_paper = cov.new_zeros(S * n_tiles, tile * tile).index_add(
        0, seed_tile, torch.log1p(-per_stroke.clamp(max=_SOLID))
    )                                                                  # (S·n_tiles, T²)
    ink = 1.0 - torch.exp(log_paper)                                   # 1 - Π(1 - c)
    ink = ink.reshape(S, ty_n, tx_n, tile, tile).permute(0, 1, 3, 2, 4)
    return ink.reshape(S, ty_n * tile, tx_n * tile)[:, :height, :width]


def _blank(points: torch.Tensor, widths: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Empty paper ``(S, H, W)`` that stays in the autograd graph (zero gradients), so a step
    whose strokes all lie off the canvas can still call ``backward()``."""
    paper = points.new_zeros(points.shape[0], height, width)
    return paper + 0.0 * (points.sum() + widths.sum())


def flatten(control: torch.Tensor, chords: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut strokes ``control (B, 4, 2)`` into chords: start points ``(M, 2)``, end points
    ``(M, 2)`` (differentiable w.r.t. ``control``) and the stroke index of each chord ``(M,)``."""
    with torch.no_grad():
        k = _chord_counts(control, chords)                             # (B,) chords per stroke
        owner = torch.repeat_interleave(torch.arange(control.shape[0], device=control.device), k)
        j = torch.arange(owner.numel(), device=control.device) - (torch.cumsum(k, 0) - k)[owner]
        kk = k[owner].to(control.dtype)
        b0, b1 = _bernstein(j / kk), _bernstein((j + 1) / kk)         # (M, 4) each
    cp = control[owner]                                                # (M, 4, 2)
    return torch.einsum("mc,mcd->md", b0, cp), torch.einsum("mc,mcd->md", b1, cp), owner


def _chord_counts(control: torch.Tensor, chords: int | None) -> torch.Tensor:
    """Chords per stroke ``(S·N,)``: ~CHORD_PX-long chords along each stroke's control polygon
    (an upper bound of its length), bounded; or ``chords`` for all. Each stroke's picture
    therefore depends on that stroke alone, whatever else is in the batch."""
    if chords is not None:
        return torch.full((control.shape[0],), int(chords), dtype=torch.long, device=control.device)
    poly_len = (control[:, 1:] - control[:, :-1]).norm(dim=-1).sum(-1)
    poly_len = torch.nan_to_num(poly_len, nan=0.0, posinf=0.0)
    return torch.ceil(poly_len / CHORD_PX).long().clamp(MIN_CHORDS, MAX_CHORDS)


def _bernstein(t: torch.Tensor) -> torch.Tensor:
    """Cubic Bernstein weights ``(M, 4)`` at parameters ``t (M,)``."""
    u = 1.0 - t
    return torch.stack([u * u * u, 3 * u * u * t, 3 * u * t * t, t * t * t], dim=1)


_OFFS_CACHE: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}


def _tile_pixel_centres(tile: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Pixel centres of one tile relative to its top-left corner, row-major: ``(T², 2)`` xy."""
    key = (tile, device, dtype)
    if key not in _OFFS_CACHE:
        r = torch.arange(tile, dtype=dtype, device=device) + 0.5
        yy, xx = torch.meshgrid(r, r, indexing="ij")
        _OFFS_CACHE[key] = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    return _OFFS_CACHE[key]


def chord_tile_pairs(
    a: torch.Tensor,
    b: torch.Tensor,
    half: torch.Tensor,
    tile: int,
    tx_n: int,
    ty_n: int,
    height: int,
    width: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All (chord index, tile index) pairs whose chord's reach box overlaps the tile.

    ``a, b``: ``(M, 2)`` chord end points; ``half``: ``(M,)`` half widths. Coverage is zero
    beyond ``half + 0.5`` from the chord, so the box is grown by ``half + 1`` (safe margin).
    Returns two ``(P,)`` int64 tensors. Tile index = row · tx_n + column.
    """
    reach = (half + 1.0).unsqueeze(1)
    lo = torch.minimum(a, b) - reach                                   # (M, 2)
    hi = torch.maximum(a, b) + reach
    size = a.new_tensor([width, height])
    inside = ((hi > 0) & (lo < size)).all(dim=1) & torch.isfinite(lo).all(dim=1) & torch.isfinite(hi).all(dim=1)
    last = torch.tensor([tx_n - 1, ty_n - 1], device=a.device)
    t0 = torch.minimum(torch.floor(lo.clamp(min=0) / tile).long(), last)
    t1 = torch.minimum(torch.floor(hi.clamp(min=0, max=1e9) / tile).long(), last)
    span = (t1 - t0 + 1).clamp(min=0)                                  # (M, 2) tiles per axis
    count = span[:, 0] * span[:, 1] * inside
    chord = torch.repeat_interleave(torch.arange(a.shape[0], device=a.device), count)
    start = torch.cumsum(count, 0) - count
    local = torch.arange(chord.numel(), device=a.device) - start[chord]
    nx = span[chord, 0]
    col = t0[chord, 0] + local % nx
    row = t0[chord, 1] + local // nx
    return chord, row * tx_n + col
