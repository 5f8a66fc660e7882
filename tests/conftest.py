"""Shared test helpers: an independent SVG renderer (cairosvg) turned into ink coverage."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch


def cairo_ink(svg_text: str, width: int, height: int) -> np.ndarray:
    """Ink coverage ``(H, W)`` in [0, 1] of an SVG as cairosvg draws it on white paper."""
    import cairosvg
    from PIL import Image

    png = cairosvg.svg2png(bytestring=svg_text.encode("utf-8"), output_width=width, output_height=height)
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"), dtype=np.float64) / 255.0
    # composite on white, then ink = 1 - luminance (our strokes are black)
    grey = 1.0 - rgba[..., 3] + rgba[..., 3] * rgba[..., :3].mean(-1)
    return 1.0 - grey


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
