"""Optional rasterizer backend on diffvg (Li et al. 2020), used only when ``pydiffvg`` imports.

Same contract as ``torch_raster.render``: ``(S, N, 4, 2)`` points and ``(S, N)`` full widths in
pixels → ``(S, H, W)`` ink coverage. diffvg's ``stroke_width`` is a half-width, so we pass
``width / 2``; its 2×2 box-filtered samples match our analytic 1-px band. One diffvg scene per
seed: diffvg has no batch dimension.
"""

from __future__ import annotations

import torch

import pydiffvg  # only imported through clipasso_engine.raster when available


def render(points: torch.Tensor, widths: torch.Tensor, height: int, width: int, samples: int = 2) -> torch.Tensor:
    """``samples``: diffvg's samples per pixel side (2: CLIPasso's 2×2). At 2×2 diffvg's edges
    are noisy (two seeds of its sampling differ by ~0.08 mean |Δ| over the ink at width 3), so
    comparisons use it at 8×8, where it is a reference."""
    pydiffvg.set_use_gpu(points.is_cuda)
    raster = pydiffvg.RenderFunction.apply
    out = []
    for seed_points, seed_widths in zip(points, widths):                 # (N, 4, 2), (N,)
        shapes, groups = [], []
        for i, (pts, w) in enumerate(zip(seed_points, seed_widths)):
            shapes.append(
                pydiffvg.Path(
                    num_control_points=torch.tensor([2]),
                    points=pts,
                    stroke_width=w * 0.5,
                    is_closed=False,
                )
            )
            groups.append(
                pydiffvg.ShapeGroup(
                    shape_ids=torch.tensor([i]),
                    fill_color=None,
                    stroke_color=torch.tensor([0.0, 0.0, 0.0, 1.0], device=points.device),
                )
            )
        args = pydiffvg.RenderFunction.serialize_scene(width, height, shapes, groups)
        rgba = raster(width, height, samples, samples, 0, None, *args)   # (H, W, 4), premultiplied
        out.append(rgba[..., 3])                                         # alpha of black ink = coverage
    return torch.stack(out).to(points.device, points.dtype)
