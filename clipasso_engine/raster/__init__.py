"""Differentiable stroke rasterizers behind one signature.

``render(points (S, N, 4, 2), widths (S, N), height, width) -> (S, H, W)`` ink coverage in
[0, 1]. The pure-PyTorch backend is the default and runs everywhere (CPU, CUDA, MPS); the
``diffvg`` backend is offered only when ``pydiffvg`` imports (it is on no package registry).
"""

from __future__ import annotations

import torch

from . import torch_raster

BACKENDS = ("torch", "diffvg")


def diffvg_available() -> bool:
    """True when the optional ``pydiffvg`` package imports."""
    try:
        import pydiffvg  # noqa: F401
    except ImportError:
        return False
    return True


def render(
    points: torch.Tensor,
    widths: torch.Tensor,
    height: int,
    width: int,
    *,
    backend: str = "torch",
) -> torch.Tensor:
    """Ink coverage ``(S, height, width)`` of the strokes; see ``torch_raster.render``."""
    if backend == "torch":
        return torch_raster.render(points, widths, height, width)
    if backend == "diffvg":
        if not diffvg_available():
            raise RuntimeError(
                "the diffvg backend needs the 'pydiffvg' package, which is not installed; "
                "build it from https://github.com/BachiLi/diffvg or use backend='torch'"
            )
        from . import diffvg_raster

        return diffvg_raster.render(points, widths, height, width)
    raise ValueError(f"unknown rasterizer backend {backend!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["render", "diffvg_available", "BACKENDS"]
