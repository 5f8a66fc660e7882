"""Shared fixtures (the session's engine process, a real photo, a seeded generator) and an
independent SVG renderer (cairosvg) turned into ink coverage."""

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


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    """The session's engine: one real ``clipasso serve`` process (tiny random CLIP towers) for
    every module that talks to an engine over HTTP."""
    from engine_support import MAX_QUEUE, start_engine, stop_engine

    running = start_engine(tmp_path_factory.mktemp("engine"), "--max-queue", str(MAX_QUEUE))
    yield running
    stop_engine(running)


@pytest.fixture(scope="session")
def photo() -> bytes:
    """A real photo as PNG bytes: scikit-image's coffee, 150 × 100."""
    from PIL import Image
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.coffee()).resize((150, 100)).save(buf, "PNG")
    return buf.getvalue()
